-- spanstamp insights over OTLP JSON lines, in DuckDB (docs/insights.md states the definitions).
--
-- A template: spanstamp.insights.engine fills in $FILES (a list of paths), $IDLE_NS, $TOP,
-- $MAX_OBJECT, $STRUCTURE and the attribute names (SQL strings, from spanstamp.attributes).
-- Each `-- step: name` starts a group of statements; the engine runs macros, read, (only
-- when some rows are bad) bad_files and drop_bad, then aggregate and result. The last
-- statement returns the whole result document as one JSON value.

-- step: macros
CREATE OR REPLACE MACRO _attr(kv, k) AS list_filter(kv, lambda a: a.key = k)[1].value;
-- Stripped of ASCII whitespace as spanstamp strips ids (and as clickhouse.sql does): a
-- session id with a trailing tab is the session without it.
CREATE OR REPLACE MACRO _text(v) AS nullif(trim(v.stringValue, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)), '');
CREATE OR REPLACE MACRO _iso(ns) AS strftime(make_timestamp(ns // 1000), '%Y-%m-%dT%H:%M:%S.%gZ');
CREATE OR REPLACE MACRO _stats(x) AS {'mean': avg(x), 'p50': quantile_cont(x, 0.5), 'p90': quantile_cont(x, 0.9)};

-- step: otlp_spans
-- The normalized span relation of OTLP JSON lines files, one row per span. A line that is
-- not OTLP (no resourceSpans) becomes one row without ids; `bad` marks such rows and spans
-- without ids or times. `file` costs nothing unless a query reads it.
CREATE OR REPLACE MACRO otlp_spans(files) AS TABLE
WITH lines AS (
    -- from_json over each line's text: far faster than read_json's typed columns on lines
    -- that hold hundreds of spans each.
    SELECT filename AS file, from_json(json, '$STRUCTURE').resourceSpans AS rs
    FROM read_ndjson_objects(files, filename = true, maximum_object_size = $MAX_OBJECT)
), resources AS (
    SELECT file, unnest(CASE WHEN rs IS NULL THEN [NULL] ELSE rs END) AS r FROM lines
), scopes AS (
    SELECT file, unnest(CASE WHEN r IS NULL THEN [NULL] ELSE r.scopeSpans END) AS sc FROM resources
), flat AS (
    SELECT file, unnest(CASE WHEN sc IS NULL THEN [NULL] ELSE sc.spans END) AS s FROM scopes
), picked AS (
    SELECT file, s,
           list_filter(s.attributes, lambda a: a.key IN ($SESSION_ID, $USER_ID, $TASK_ID, $FEEDBACK_TASK_ID,
                                                        $INPUT_VALUE)) AS kv,
           list_filter(s.events, lambda e: e.name = $SESSION_END_EVENT)[-1].attributes AS ev
    FROM flat
), normal AS (
    SELECT file,
           nullif(s.traceId, '') AS trace_id,
           nullif(s.spanId, '') AS span_id,
           nullif(s.parentSpanId, '') AS parent_id,
           TRY_CAST(s.startTimeUnixNano AS BIGINT) AS start_ns,
           TRY_CAST(s.endTimeUnixNano AS BIGINT) AS end_ns,
           coalesce(s.status.code IN ('2', 'STATUS_CODE_ERROR'), false) AS failed,
           _text(_attr(kv, $SESSION_ID)) AS session_id,
           _text(_attr(kv, $USER_ID)) AS user_id,
           _text(_attr(kv, $TASK_ID)) IS NOT NULL AS has_task_id,
           _attr(kv, $FEEDBACK_TASK_ID) IS NOT NULL AS is_feedback,
           _attr(kv, $INPUT_VALUE).stringValue AS input,
           _text(_attr(ev, $SESSION_ID)) AS ended_session,
           _attr(ev, $SESSION_END_REASON).stringValue AS end_reason
    FROM picked
)
SELECT * EXCLUDE (has_task_id),
       has_task_id AND NOT is_feedback AS is_task,
       trace_id IS NULL OR span_id IS NULL OR start_ns IS NULL OR end_ns IS NULL AS bad
FROM normal;

-- step: read
CREATE OR REPLACE TEMP TABLE spans AS SELECT * EXCLUDE (file) FROM otlp_spans($FILES);

-- step: bad_files
-- Only when `spans` holds bad rows: which files they came from (the engine then names
-- their lines in a slower pass over those files only).
SELECT file, count(*) AS bad FROM otlp_spans($FILES) WHERE bad GROUP BY file ORDER BY file;

-- step: drop_bad
DELETE FROM spans WHERE bad;

-- step: aggregate
-- One row per trace: how its turns are found, and its figures as a whole. When the trace's
-- one root (no parent) is a task span, the whole trace is that turn: every span descends
-- from the root, also one whose parent is missing from the data.
CREATE OR REPLACE TEMP TABLE traces AS
SELECT trace_id,
       count(*) FILTER (WHERE is_task) AS tasks,
       count(*) FILTER (WHERE parent_id IS NULL) = 1 AND bool_or(parent_id IS NULL AND is_task) AS task_root,
       arg_min({'input': input, 'session': session_id, 'span': span_id}, (start_ns, span_id))
           FILTER (WHERE parent_id IS NULL) AS root,
       min(start_ns) FILTER (WHERE NOT is_feedback) AS start_ns,
       max(end_ns) FILTER (WHERE NOT is_feedback) AS end_ns,
       bool_or(failed) FILTER (WHERE NOT is_feedback) AS failed,
       arg_min(user_id, (start_ns, span_id)) FILTER (WHERE user_id IS NOT NULL AND NOT is_feedback) AS user_id,
       arg_min(input, (start_ns, span_id)) FILTER (WHERE input IS NOT NULL AND NOT is_feedback) AS first_input
FROM spans GROUP BY trace_id;

-- In other traces with task spans, each span gets the outermost task span above it (or
-- itself): a walk down from the roots (a span whose parent is not in the data is a root).
CREATE OR REPLACE TEMP TABLE task_spans AS
WITH RECURSIVE candidates AS (
    SELECT s.trace_id, s.span_id, s.parent_id, s.is_task
    FROM spans s SEMI JOIN traces t ON s.trace_id = t.trace_id AND t.tasks > 0 AND NOT t.task_root
), walk(trace_id, span_id, turn_span, depth) AS (
    SELECT c.trace_id, c.span_id, CASE WHEN c.is_task THEN c.span_id END, 0
    FROM candidates c
    WHERE c.parent_id IS NULL
       OR NOT EXISTS (SELECT 1 FROM candidates p WHERE p.trace_id = c.trace_id AND p.span_id = c.parent_id)
    UNION ALL
    SELECT c.trace_id, c.span_id, coalesce(w.turn_span, CASE WHEN c.is_task THEN c.span_id END), w.depth + 1
    FROM walk w JOIN candidates c ON c.trace_id = w.trace_id AND c.parent_id = w.span_id
    WHERE w.depth < 1000  -- a parent cycle in broken data ends here
)
SELECT trace_id, span_id, turn_span FROM walk WHERE turn_span IS NOT NULL;

-- Turns: an outermost task span with its descendants; in traces without task spans, the
-- spans of one (trace, session) pair. Input: the task span's, else the trace root's, else
-- the earliest span's that has one.
CREATE OR REPLACE TEMP TABLE turns AS
WITH whole AS (
    SELECT trace_id, root.span AS turn_span, root.session AS session_id, start_ns, end_ns, failed, user_id,
           coalesce(root.input, first_input) AS input
    FROM traces WHERE task_root
), nested AS (
    SELECT s.trace_id, t.turn_span,
           any_value(s.session_id) FILTER (WHERE s.span_id = t.turn_span) AS session_id,
           min(s.start_ns) AS start_ns, max(s.end_ns) AS end_ns, bool_or(s.failed) AS failed,
           arg_min(s.user_id, (s.start_ns, s.span_id)) FILTER (WHERE s.user_id IS NOT NULL) AS user_id,
           any_value(s.input) FILTER (WHERE s.span_id = t.turn_span) AS head_input,
           arg_min(s.input, (s.start_ns, s.span_id)) FILTER (WHERE s.input IS NOT NULL) AS first_input
    FROM spans s JOIN task_spans t ON s.trace_id = t.trace_id AND s.span_id = t.span_id
    WHERE NOT s.is_feedback
    GROUP BY s.trace_id, t.turn_span
), untasked AS (
    SELECT s.trace_id, s.session_id AS turn_span, s.session_id,
           min(s.start_ns) AS start_ns, max(s.end_ns) AS end_ns, bool_or(s.failed) AS failed,
           arg_min(s.user_id, (s.start_ns, s.span_id)) FILTER (WHERE s.user_id IS NOT NULL) AS user_id,
           arg_min(s.input, (s.start_ns, s.span_id)) FILTER (WHERE s.input IS NOT NULL) AS first_input
    FROM spans s SEMI JOIN traces t ON s.trace_id = t.trace_id AND t.tasks = 0
    WHERE s.session_id IS NOT NULL AND NOT s.is_feedback
    GROUP BY s.trace_id, s.session_id
), found AS (
    SELECT * FROM whole
    UNION ALL
    SELECT n.trace_id, n.turn_span, n.session_id, n.start_ns, n.end_ns, n.failed, n.user_id,
           coalesce(n.head_input, t.root.input, n.first_input)
    FROM nested n JOIN traces t ON t.trace_id = n.trace_id
    UNION ALL
    SELECT u.trace_id, u.turn_span, u.session_id, u.start_ns, u.end_ns, u.failed, u.user_id,
           coalesce(t.root.input, u.first_input)
    FROM untasked u JOIN traces t ON t.trace_id = u.trace_id
)
SELECT *, end_ns - start_ns AS latency_ns,
       -- The furthest end of the session's earlier turns: a gap after it splits visits.
       max(end_ns) OVER (PARTITION BY session_id ORDER BY start_ns, trace_id, turn_span
                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
FROM found WHERE session_id IS NOT NULL;

CREATE OR REPLACE TEMP TABLE islands AS
SELECT session_id, start_ns, end_ns,
       sum(CASE WHEN prev_end IS NULL OR start_ns > prev_end THEN 1 ELSE 0 END)
           OVER (PARTITION BY session_id ORDER BY start_ns, trace_id, turn_span ROWS UNBOUNDED PRECEDING) AS island,
       sum(CASE WHEN prev_end IS NULL OR start_ns - prev_end > $IDLE_NS THEN 1 ELSE 0 END)
           OVER (PARTITION BY session_id ORDER BY start_ns, trace_id, turn_span ROWS UNBOUNDED PRECEDING) AS visit
FROM turns;

CREATE OR REPLACE TEMP TABLE visits AS
SELECT session_id, visit, (max(end_ns) - min(start_ns)) / 1e9 AS duration_s
FROM islands GROUP BY session_id, visit;

CREATE OR REPLACE TEMP TABLE sessions AS
WITH active AS (
    SELECT session_id, sum(e - s) / 1e9 AS active_s
    FROM (SELECT session_id, min(start_ns) AS s, max(end_ns) AS e FROM islands GROUP BY session_id, island)
    GROUP BY session_id
), recorded AS (
    SELECT ended_session AS session_id, arg_max({'reason': end_reason}, end_ns).reason AS reason
    FROM spans WHERE ended_session IS NOT NULL GROUP BY ended_session
), newest AS (SELECT max(end_ns) AS ns FROM spans)
SELECT t.session_id, count(*) AS turns, min(t.start_ns) AS first_start, max(t.end_ns) AS last_end,
       (max(t.end_ns) - min(t.start_ns)) / 1e9 AS duration_s,
       any_value(a.active_s) AS active_s,
       arg_min(t.user_id, (t.start_ns, t.trace_id)) FILTER (WHERE t.user_id IS NOT NULL) AS user_id,
       count(DISTINCT t.user_id) AS users,
       sum(t.failed::INTEGER) AS failed_turns,
       arg_max({'failed': t.failed, 'latency': t.latency_ns, 'input': t.input}, (t.start_ns, t.trace_id, t.turn_span)) AS last,
       quantile_cont(t.latency_ns, 0.5) AS median_latency_ns,
       any_value(r.session_id) IS NOT NULL AS recorded_end,
       any_value(r.reason) AS end_reason,
       any_value(r.session_id) IS NOT NULL OR any_value(n.ns) - max(t.end_ns) > $IDLE_NS AS ended
FROM turns t
JOIN active a ON a.session_id = t.session_id
CROSS JOIN newest n
LEFT JOIN recorded r ON r.session_id = t.session_id
GROUP BY t.session_id;

CREATE OR REPLACE TEMP TABLE users AS
WITH days AS (
    SELECT s.user_id, count(DISTINCT CAST(make_timestamp(t.start_ns // 1000) AS DATE)) AS active_days
    FROM turns t JOIN sessions s ON s.session_id = t.session_id
    WHERE s.user_id IS NOT NULL GROUP BY s.user_id
)
SELECT s.user_id, count(*) AS sessions, sum(s.turns)::BIGINT AS turns, avg(s.turns) AS mean_turns_per_session,
       avg(s.duration_s) AS mean_session_duration_s, min(s.first_start) AS first_seen, max(s.last_end) AS last_seen,
       any_value(d.active_days) AS active_days
FROM sessions s JOIN days d ON d.user_id = s.user_id
GROUP BY s.user_id;

-- step: result
-- The whole result document, one JSON value.
SELECT to_json({
    'spans': (SELECT count(*) FROM spans),
    'turns': (SELECT count(*) FROM turns),
    'idle_s': $IDLE_NS / 1e9,
    'newest': (SELECT _iso(max(end_ns)) FROM spans),
    'sessions': (SELECT {
        'count': count(*), 'single_turn': count(*) FILTER (WHERE turns = 1),
        'multi_user': count(*) FILTER (WHERE users > 1), 'ended': count(*) FILTER (WHERE ended),
        'turns_per_session': _stats(turns), 'duration_s': _stats(duration_s), 'active_s': _stats(active_s),
        'visits': (SELECT count(*) FROM visits),
        'visit_duration_s': (SELECT _stats(duration_s) FROM visits)} FROM sessions),
    'users': {
        'count': (SELECT count(*) FROM users),
        'returning': (SELECT count(*) FROM users WHERE active_days >= 2),
        'top': coalesce((SELECT list({'user_id': user_id, 'sessions': sessions, 'turns': turns,
                                      'mean_turns_per_session': mean_turns_per_session,
                                      'mean_session_duration_s': mean_session_duration_s,
                                      'first_seen': _iso(first_seen), 'last_seen': _iso(last_seen),
                                      'active_days': active_days} ORDER BY turns DESC, user_id)
                         FROM (SELECT * FROM users ORDER BY turns DESC, user_id LIMIT $TOP)), [])},
    'endings': (SELECT {
        'ended': count(*),
        'last_turn_failed_share': count(*) FILTER (WHERE last.failed) / nullif(count(*), 0),
        'all_turns_failed_share': sum(failed_turns) / nullif(sum(turns), 0),
        'last_turn_latency_ratio': {'mean': avg(last.latency / nullif(median_latency_ns, 0)),
                                    'p50': quantile_cont(last.latency / nullif(median_latency_ns, 0), 0.5)},
        'single_turn_share': count(*) FILTER (WHERE turns = 1) / nullif(count(*), 0),
        'top_last_inputs': coalesce((
            SELECT list({'input': input, 'count': n} ORDER BY n DESC, input) FROM (
                SELECT input, count(*) AS n FROM (
                    SELECT lower(trim(regexp_replace(last.input, '\s+', ' ', 'g'))) AS input
                    FROM sessions WHERE ended AND last.input IS NOT NULL)
                GROUP BY input ORDER BY n DESC, input LIMIT 10)), []),
        'reasons': coalesce((
            SELECT list({'reason': end_reason, 'count': n} ORDER BY n DESC, end_reason) FROM (
                SELECT end_reason, count(*) AS n FROM sessions
                WHERE recorded_end AND end_reason IS NOT NULL GROUP BY end_reason)), [])}
        FROM sessions WHERE ended),
    'charts': {
        'turns_per_session': coalesce((
            SELECT list({'turns': turns, 'sessions': n} ORDER BY turns)
            FROM (SELECT turns, count(*) AS n FROM sessions GROUP BY turns)), []),
        'session_duration_s': coalesce((
            SELECT list({'le': b.le, 'sessions': (SELECT count(*) FROM sessions s
                                                   WHERE s.duration_s <= coalesce(b.le, 'inf'::DOUBLE)
                                                     AND s.duration_s > b.lo)} ORDER BY b.i)
            FROM (SELECT i, le, coalesce(lag(le) OVER (ORDER BY i), -1) AS lo FROM (VALUES
                  (1, 10.0), (2, 30.0), (3, 60.0), (4, 300.0), (5, 600.0), (6, 1800.0), (7, 3600.0), (8, NULL))
                  v(i, le)) b
            WHERE (SELECT count(*) FROM sessions) > 0), []),
        'sessions_per_day': coalesce((
            SELECT list({'day': strftime(day, '%Y-%m-%d'), 'sessions': n} ORDER BY day)
            FROM (SELECT CAST(make_timestamp(first_start // 1000) AS DATE) AS day, count(*) AS n
                  FROM sessions GROUP BY day)), [])}
}) AS result;
