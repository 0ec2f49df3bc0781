-- spanstamp insights, in ClickHouse, over the table the OpenTelemetry Collector's ClickHouse
-- exporter writes (`otel_traces`, exporter/clickhouseexporter in opentelemetry-collector-contrib).
--
-- One query, one row, one column: the whole insights document as one JSON value, the same
-- document `spanstamp insights --json` prints for OTLP files (docs/insights.md defines every
-- figure; docs/insights-clickhouse.md explains how to run this file). Run it as it is:
--
--     clickhouse-client --param_idle_s=1800 --param_top=20 --queries-file clickhouse.sql
--
-- Parameters (ClickHouse query parameters; over HTTP: ?param_idle_s=1800&param_top=20):
--   {idle_s:Float64}  the idle threshold in seconds: a longer gap between turns starts a new
--                     visit, and a session whose last turn ended more than this before the
--                     newest span in the table counts as ended
--   {top:UInt32}      how many users `users.top` lists
--
-- Columns read, as the exporter's default schema has them (attributes as Map columns; its
-- JSON-typed schema, where SpanAttributes is a JSON column, is not read by this file):
--   TraceId, SpanId, ParentSpanId   hex ids; ParentSpanId is '' for a root span
--   Timestamp DateTime64(9)         the span's start
--   Duration                        end - start in ns (UInt64 in newer, Int64 in older schemas)
--   StatusCode                      'STATUS_CODE_ERROR' (older exporters) or 'Error' (newer)
--   SpanAttributes Map(String, String)   every attribute value as a string
--   Events.Name, Events.Attributes       the span events (Nested columns)
-- The attribute and event names below are the ones `spanstamp.attributes` defines (SESSION_ID,
-- USER_ID, TASK_ID, FEEDBACK_TASK_ID, INPUT_VALUE, OUTPUT_VALUE, SESSION_END_EVENT,
-- SESSION_END_REASON); the test suite checks that this file spells them the same way.
--
-- Needs ClickHouse 24.4 or newer (recursive CTEs, the analyzer on, as by default since 24.3).
WITH RECURSIVE

-- 1. spans: the normalized span relation, one row per row of otel_traces.
--    session_id / user_id are stripped and NULL when empty; a task span carries
--    spanstamp.task.id; a feedback span (spanstamp.feedback.task_id) is never part of a turn;
--    a lifecycle span carries its session only in its session.end event (ended_session).
spans AS (
    SELECT
        TraceId AS trace_id,
        SpanId AS span_id,
        nullIf(ParentSpanId, '') AS parent_id,
        toUnixTimestamp64Nano(Timestamp) AS start_ns,
        start_ns + toInt64(Duration) AS end_ns,
        StatusCode IN ('STATUS_CODE_ERROR', 'Error') AS failed,
        nullIf(trim(BOTH ' \t\n\r\f\v' FROM SpanAttributes['session.id']), '') AS session_id,
        nullIf(trim(BOTH ' \t\n\r\f\v' FROM SpanAttributes['user.id']), '') AS user_id,
        mapContains(SpanAttributes, 'spanstamp.feedback.task_id') AS is_feedback,
        mapContains(SpanAttributes, 'spanstamp.task.id') AND NOT is_feedback AS is_task,
        if(mapContains(SpanAttributes, 'input.value'), toNullable(SpanAttributes['input.value']), NULL) AS input,
        if(mapContains(SpanAttributes, 'output.value'), toNullable(SpanAttributes['output.value']), NULL) AS output,
        arrayFirstIndex(name -> name = 'session.end', Events.Name) AS end_event,
        if(end_event > 0,
           nullIf(trim(BOTH ' \t\n\r\f\v' FROM Events.Attributes[end_event]['session.id']), ''),
           NULL) AS ended_session,
        if(end_event > 0 AND mapContains(Events.Attributes[end_event], 'spanstamp.session.end_reason'),
           toNullable(Events.Attributes[end_event]['spanstamp.session.end_reason']),
           NULL) AS end_reason
    FROM otel_traces
),

-- 2. task_traces: the traces that hold at least one task span (task() turns).
task_traces AS (
    SELECT DISTINCT trace_id FROM spans WHERE is_task
),

-- 3. walk: every span of those traces reachable from a root (no parent, or a parent missing
--    from the table), with its outermost task ancestor-or-self as `owner` (NULL above or
--    outside every task span) and the columns a turn needs. Walking down from the roots keeps
--    bad parent links (cycles) out of the recursion; each step joins the spans to the previous
--    level only (the hash side), so the table is streamed once per level of depth.
walk AS (
    SELECT trace_id, span_id, if(is_task, toNullable(span_id), NULL) AS owner,
           start_ns, end_ns, failed, user_id, session_id, input, output, is_feedback
    FROM spans
    WHERE trace_id IN task_traces
      AND (parent_id IS NULL
           OR (trace_id, assumeNotNull(parent_id)) NOT IN (SELECT trace_id, span_id FROM spans
                                                           WHERE trace_id IN task_traces))
    UNION ALL
    SELECT child.trace_id, child.span_id, coalesce(up.owner, if(child.is_task, toNullable(child.span_id), NULL)),
           child.start_ns, child.end_ns, child.failed, child.user_id, child.session_id, child.input,
           child.output, child.is_feedback
    FROM spans AS child
    INNER JOIN walk AS up ON up.trace_id = child.trace_id AND up.span_id = child.parent_id
),

-- 4. members: the spans of each turn, keyed (trace_id, kind, turn_key):
--    kind 'task': an outermost task span and its descendants (turn_key = the task span's id);
--    kind 'trace': in a trace with no task span, all its spans of one session (turn_key =
--    that session id). Feedback spans are never members.
members AS (
    SELECT trace_id, 'task' AS kind, assumeNotNull(owner) AS turn_key, span_id, start_ns, end_ns, failed,
           user_id, session_id, input, output, span_id = owner AS is_turn_span
    FROM walk
    WHERE owner IS NOT NULL AND NOT is_feedback
    UNION ALL
    SELECT trace_id, 'trace', assumeNotNull(session_id), span_id, start_ns, end_ns, failed, user_id,
           session_id, input, output, false
    FROM spans
    WHERE session_id IS NOT NULL AND NOT is_feedback AND trace_id NOT IN task_traces
),

-- 5. roots: per trace, the input/output of its root span (the earliest span without a parent).
roots AS (
    SELECT trace_id,
           argMin(tuple(input), (start_ns, span_id)).1 AS root_input,
           argMin(tuple(output), (start_ns, span_id)).1 AS root_output
    FROM spans
    WHERE parent_id IS NULL
    GROUP BY trace_id
),

-- 6. turns: start = earliest start, end = latest end of its spans; failed if any span failed
--    (status ERROR); input/output = the task span's, else the trace root's, else the earliest
--    member's (by start, then span id) that has one; user = the first user.id in time.
--    A task turn's session is the task span's; turns without a session are dropped.
turn_rows AS (
    SELECT m.trace_id AS trace_id, m.kind AS kind, m.turn_key AS turn_key,
           if(m.kind = 'task', anyIf(m.session_id, m.is_turn_span), any(m.session_id)) AS session_id,
           min(m.start_ns) AS start_ns,
           max(m.end_ns) AS end_ns,
           max(m.failed) AS failed,
           argMinIf(m.user_id, (m.start_ns, m.span_id), m.user_id IS NOT NULL) AS user_id,
           coalesce(anyIf(m.input, m.is_turn_span), any(r.root_input),
                    argMinIf(m.input, (m.start_ns, m.span_id), m.input IS NOT NULL)) AS input,
           coalesce(anyIf(m.output, m.is_turn_span), any(r.root_output),
                    argMinIf(m.output, (m.start_ns, m.span_id), m.output IS NOT NULL)) AS output
    FROM members AS m
    LEFT JOIN roots AS r ON r.trace_id = m.trace_id
    GROUP BY m.trace_id, m.kind, m.turn_key
),

-- 7. turns, in order within their session (by start, then trace id, then key), with the
--    latest end of the turns before them: the union of turn intervals (active time) and the
--    visits (a gap, next start - latest end so far, longer than idle_s starts a new visit).
ordered AS (
    SELECT *,
           end_ns - start_ns AS latency_ns,
           row_number() OVER in_session AS position,
           max(end_ns) OVER (in_session ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
    FROM turn_rows
    WHERE session_id IS NOT NULL
    WINDOW in_session AS (PARTITION BY session_id ORDER BY start_ns, trace_id, turn_key)
),
flagged AS (
    SELECT *,
           if(position = 1, latency_ns, greatest(0, end_ns - greatest(start_ns, prev_end))) AS active_ns,
           position = 1 OR (start_ns - prev_end) > {idle_s:Float64} * 1e9 AS new_visit
    FROM ordered
),
turns AS (
    SELECT *,
           sum(new_visit) OVER (PARTITION BY session_id ORDER BY start_ns, trace_id, turn_key
                                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS visit
    FROM flagged
),

-- 8. span_totals: the span count and the newest span end (NULL for an empty table).
span_totals AS (
    SELECT count() AS spans, maxOrNull(end_ns) AS newest_ns FROM spans
),

-- 9. recorded_ends: the sessions end_session() recorded (a session.end event), each with the
--    reason of its latest recorded end that has one (`endings.reasons` counts one per session).
recorded_ends AS (
    SELECT assumeNotNull(ended_session) AS session_id,
           true AS recorded,
           argMaxIf(end_reason, end_ns, end_reason IS NOT NULL) AS reason
    FROM spans
    WHERE ended_session IS NOT NULL
    GROUP BY session_id
),

-- 10. sessions: all turns with one session id. user = the first turn user in time (turn
--     start, then trace id); multi_user when its turns carry several users; duration = last
--     turn end - first turn start; active = the union of its turns; a visit lasts from its
--     first turn start to its latest turn end; the last turn is the one that started last.
--     ended = recorded, or its last turn ended more than idle_s before the newest span end.
session_rows AS (
    SELECT session_id,
           count() AS turns,
           min(start_ns) AS first_start,
           max(end_ns) AS last_end,
           (last_end - first_start) / 1e9 AS duration_s,
           sum(active_ns) / 1e9 AS active_s,
           arrayMap((first, last) -> (last - first) / 1e9,
                    minMap([visit], [start_ns]).2, maxMap([visit], [end_ns]).2) AS visit_durations_s,
           argMinIf(user_id, (start_ns, trace_id), user_id IS NOT NULL) AS session_user,
           uniqExact(user_id) AS users,
           sum(failed) AS failed_turns,
           argMax(failed, (start_ns, trace_id, turn_key)) AS last_failed,
           argMax(latency_ns, (start_ns, trace_id, turn_key)) AS last_latency_ns,
           argMax(tuple(input), (start_ns, trace_id, turn_key)).1 AS last_input,
           quantileExactInclusive(0.5)(latency_ns) AS median_latency_ns,
           groupUniqArray(toDate(fromUnixTimestamp64Nano(start_ns, 'UTC'), 'UTC')) AS days
    FROM turns
    GROUP BY session_id
),
sessions AS (
    SELECT s.*,
           e.reason AS reason,
           ifNull(e.recorded, false) OR ((SELECT newest_ns FROM span_totals) - s.last_end) > {idle_s:Float64} * 1e9 AS ended,
           if(s.median_latency_ns > 0, s.last_latency_ns / s.median_latency_ns, NULL) AS last_latency_ratio,
           lowerUTF8(trim(BOTH ' ' FROM replaceRegexpAll(s.last_input, '\\s+', ' '))) AS last_input_norm,
           -- the duration bucket: 1..8 for <= 10, 30, 60, 300, 600, 1800, 3600 s and longer
           arrayFirstIndex(le -> s.duration_s <= le, [10., 30., 60., 300., 600., 1800., 3600., inf]) AS bucket
    FROM session_rows AS s
    LEFT JOIN recorded_ends AS e ON e.session_id = s.session_id
),

-- The figures below read `sessions` three times, and ClickHouse computes a WITH subquery
-- each time it is read: session_figures, user_figures and last_inputs each run the pipeline
-- above once (a fixed cost, however large the table).

-- 11. session_figures: every session, visit, ending and chart figure in one pass.
session_figures AS (
    SELECT count() AS n_sessions,
           sum(turns) AS n_turns,
           countIf(turns = 1) AS n_single_turn,
           countIf(users > 1) AS n_multi_user,
           countIf(ended) AS n_ended,
           tuple(avgOrNull(turns), quantileExactInclusiveOrNull(0.5)(turns),
                 quantileExactInclusiveOrNull(0.9)(turns)) AS turns_per_session,
           tuple(avgOrNull(duration_s), quantileExactInclusiveOrNull(0.5)(duration_s),
                 quantileExactInclusiveOrNull(0.9)(duration_s)) AS duration_stats,
           tuple(avgOrNull(active_s), quantileExactInclusiveOrNull(0.5)(active_s),
                 quantileExactInclusiveOrNull(0.9)(active_s)) AS active_stats,
           groupArrayArray(visit_durations_s) AS visit_durations,
           -- endings, over ended sessions only (NULL shares when none ended)
           if(n_ended = 0, NULL, countIf(ended AND last_failed) / n_ended) AS last_turn_failed_share,
           if(sumIf(turns, ended) = 0, NULL, sumIf(failed_turns, ended) / sumIf(turns, ended)) AS all_turns_failed_share,
           tuple(avgOrNullIf(last_latency_ratio, ended),
                 quantileExactInclusiveOrNullIf(0.5)(last_latency_ratio, ended)) AS last_turn_latency_ratio,
           if(n_ended = 0, NULL, countIf(ended AND turns = 1) / n_ended) AS single_turn_share,
           sumMapIf([assumeNotNull(reason)], [toUInt64(1)], ended AND reason IS NOT NULL) AS by_reason,
           -- charts: sessions by turn count, by duration bucket, by the UTC day of their first turn
           sumMap([turns], [toUInt64(1)]) AS by_turns,
           [countIf(bucket = 1), countIf(bucket = 2), countIf(bucket = 3), countIf(bucket = 4),
            countIf(bucket = 5), countIf(bucket = 6), countIf(bucket = 7), countIf(bucket = 8)] AS by_bucket,
           sumMap([toDate(fromUnixTimestamp64Nano(first_start, 'UTC'), 'UTC')], [toUInt64(1)]) AS by_day
    FROM sessions
),

-- 12. user_figures: per session user, over the sessions whose user it is: first/last seen =
--     their earliest turn start / latest turn end; active_days = distinct UTC dates of their
--     turn starts; returning = active on two or more days. `top`: by turns desc, then user id.
user_figures AS (
    SELECT count() AS n_users,
           countIf(active_days >= 2) AS n_returning,
           arraySlice(groupArraySorted(greatest({top:UInt32}, 1))(tuple(
               -toInt64(n_turns), user_id, n_sessions, mean_turns_per_session, mean_session_duration_s,
               first_ns, last_ns, active_days)), 1, {top:UInt32}) AS top
    FROM (
        SELECT assumeNotNull(session_user) AS user_id,
               count() AS n_sessions,
               sum(turns) AS n_turns,
               avg(turns) AS mean_turns_per_session,
               avg(duration_s) AS mean_session_duration_s,
               min(first_start) AS first_ns,
               max(last_end) AS last_ns,
               length(groupUniqArrayArray(days)) AS active_days
        FROM sessions
        WHERE session_user IS NOT NULL
        GROUP BY session_user
    )
),

-- 13. last_inputs: the 10 most frequent last-turn inputs of ended sessions, compared as
--     lower(trim(whitespace collapsed)) (a blank input counts as ''); by count desc, then input.
last_inputs AS (
    SELECT groupArraySorted(10)(tuple(-toInt64(n), input)) AS top
    FROM (
        SELECT assumeNotNull(last_input_norm) AS input, count() AS n
        FROM sessions
        WHERE ended AND last_input_norm IS NOT NULL
        GROUP BY input
    )
)

-- 14. The document. Times are ISO 8601 UTC with milliseconds (truncated) and a Z; shares are
--     NULL when nothing divides; statistics are NULL over nothing; percentiles interpolate
--     linearly between closest ranks (quantileExactInclusive, NumPy's default). The CAST
--     names every field (and so the JSON keys) and fixes its type.
SELECT toJSONString(CAST(tuple(
    t.spans,
    f.n_turns,
    {idle_s:Float64},
    if(t.newest_ns IS NULL, NULL,
       concat(formatDateTime(toDateTime(intDiv(assumeNotNull(t.newest_ns), 1000000000), 'UTC'), '%Y-%m-%dT%H:%i:%S'),
              '.', leftPad(toString(intDiv(assumeNotNull(t.newest_ns), 1000000) % 1000), 3, '0'), 'Z')),
    tuple(f.n_sessions, f.n_single_turn, f.n_multi_user, f.n_ended, f.turns_per_session, f.duration_stats, f.active_stats,
          length(f.visit_durations),
          tuple(arrayReduce('avgOrNull', f.visit_durations),
                arrayReduce('quantileExactInclusiveOrNull(0.5)', f.visit_durations),
                arrayReduce('quantileExactInclusiveOrNull(0.9)', f.visit_durations))),
    tuple(u.n_users, u.n_returning,
          arrayMap(x -> tuple(x.2, x.3, -x.1, x.4, x.5,
                              concat(formatDateTime(toDateTime(intDiv(x.6, 1000000000), 'UTC'), '%Y-%m-%dT%H:%i:%S'),
                                     '.', leftPad(toString(intDiv(x.6, 1000000) % 1000), 3, '0'), 'Z'),
                              concat(formatDateTime(toDateTime(intDiv(x.7, 1000000000), 'UTC'), '%Y-%m-%dT%H:%i:%S'),
                                     '.', leftPad(toString(intDiv(x.7, 1000000) % 1000), 3, '0'), 'Z'),
                              x.8),
                   u.top)),
    tuple(f.n_ended, f.last_turn_failed_share, f.all_turns_failed_share, f.last_turn_latency_ratio,
          f.single_turn_share,
          arrayMap(x -> tuple(x.2, -x.1), l.top),
          arraySort(x -> (-toInt64(x.2), x.1), arrayZip(f.by_reason.1, f.by_reason.2))),
    tuple(arrayZip(f.by_turns.1, f.by_turns.2),
          if(f.n_sessions = 0, [], arrayZip([10, 30, 60, 300, 600, 1800, 3600, NULL], f.by_bucket)),
          arrayZip(arrayMap(day -> toString(day), f.by_day.1), f.by_day.2))
), 'Tuple(
    spans UInt64,
    turns UInt64,
    idle_s Float64,
    newest Nullable(String),
    sessions Tuple(
        count UInt64, single_turn UInt64, multi_user UInt64, ended UInt64,
        turns_per_session Tuple(mean Nullable(Float64), p50 Nullable(Float64), p90 Nullable(Float64)),
        duration_s Tuple(mean Nullable(Float64), p50 Nullable(Float64), p90 Nullable(Float64)),
        active_s Tuple(mean Nullable(Float64), p50 Nullable(Float64), p90 Nullable(Float64)),
        visits UInt64,
        visit_duration_s Tuple(mean Nullable(Float64), p50 Nullable(Float64), p90 Nullable(Float64))),
    users Tuple(
        count UInt64, returning UInt64,
        top Array(Tuple(
            user_id String, sessions UInt64, turns UInt64, mean_turns_per_session Float64,
            mean_session_duration_s Float64, first_seen String, last_seen String, active_days UInt64))),
    endings Tuple(
        ended UInt64,
        last_turn_failed_share Nullable(Float64),
        all_turns_failed_share Nullable(Float64),
        last_turn_latency_ratio Tuple(mean Nullable(Float64), p50 Nullable(Float64)),
        single_turn_share Nullable(Float64),
        top_last_inputs Array(Tuple(input String, count UInt64)),
        reasons Array(Tuple(reason String, count UInt64))),
    charts Tuple(
        turns_per_session Array(Tuple(turns UInt64, sessions UInt64)),
        session_duration_s Array(Tuple(le Nullable(UInt64), sessions UInt64)),
        sessions_per_day Array(Tuple(day String, sessions UInt64))))'
)) AS insights
FROM span_totals AS t, session_figures AS f, user_figures AS u, last_inputs AS l
SETTINGS output_format_json_quote_64bit_integers = 0, output_format_json_named_tuples_as_objects = 1
FORMAT TabSeparatedRaw
