# Turns bench/run.sh's result lines (one JSON object per run) into the
# markdown report: one table per scenario, medians of the repeats, ratios
# against the picows and raw C clients of the same run.
def median: sort | .[(length / 2 | floor)];
def r1: . * 10 | round / 10;
def r2: . * 100 | round / 100;
def ratio($v; $base): if $base != null and $base > 0 then ($v / $base | r2 | tostring) else "-" end;
def ok: map(select(.error == null and .mode != null));

. as $all |
"# wshostd benchmarks, \(now | strftime("%Y-%m-%d")) (\($build) build, \($repeats) repeats, server on core 0, client on core 1)",
"",
"Medians of the repeats. Rates and latencies are measured by the C server; client CPU, wake-ups (context switches of all its threads) and RSS from /proc over the server's measuring window.",
(
  ($all | ok | map(select(.mode == "echo" and .deflate == null))) as $rows | select($rows | length > 0) |
  "", "## Echo round trips (closed loop, \($seconds) s windows)", "",
  "| conns | size | client | msg/s | p50 µs | p99 µs | client CPU µs/msg | ÷ picows | ÷ raw C |",
  "|---|---|---|---|---|---|---|---|---|",
  ($rows | group_by([.conns, .size]) | .[] |
    (group_by(.client) | map({client: .[0].client, conns: .[0].conns, size: .[0].size,
        mps: (map(.messages_per_s) | median), p50: (map(.p50_us) | median), p99: (map(.p99_us) | median),
        cpu: (map(if .messages > 0 then .client_cpu_s * 1e6 / .messages else 0 end) | median)})) as $g |
    ($g | map({(.client): .mps}) | add) as $by |
    $g[] | "| \(.conns) | \(.size) | \(.client) | \(.mps) | \(.p50) | \(.p99) | \(.cpu | r1) | \(ratio(.mps; $by.picows)) | \(ratio(.mps; $by["raw-c"])) |")
),
(
  ($all | ok | map(select(.mode == "echo" and .deflate != null))) as $rows | select($rows | length > 0) |
  "", "## Compressed echo round trips (permessage-deflate, \($rows[0].deflate): \(if $rows[0].deflate == "nct" then "no context takeover either way" else "context takeover" end); JSON-like text; closed loop, \($seconds) s windows)", "",
  "The zlib line is no client: one thread inflating the server's message and deflating the text again, with nothing else (the limit line). Its msg/s is what one core can do.", "",
  "| conns | size | client | msg/s | p50 µs | p99 µs | client CPU µs/msg | ÷ websockets | CPU ÷ zlib |",
  "|---|---|---|---|---|---|---|---|---|",
  ($rows | group_by([.conns, .size]) | .[] |
    (group_by(.client) | map({client: .[0].client, conns: .[0].conns, size: .[0].size,
        mps: (map(.messages_per_s) | median), p50: (map(.p50_us // null) | median), p99: (map(.p99_us // null) | median),
        cpu: (map(if .messages > 0 then .client_cpu_s * 1e6 / .messages else 0 end) | median)})) as $g |
    ($g | map({(.client): .mps}) | add) as $by |
    ($g | map({(.client): .cpu}) | add) as $cpu |
    $g[] | "| \(.conns) | \(.size) | \(.client) | \(.mps) | \(.p50 // "-") | \(.p99 // "-") | \(.cpu | r1) | \(if .client == "zlib" then "-" else ratio(.mps; $by.websockets) end) | \(ratio(.cpu; $cpu.zlib)) |")
),
(
  ($all | ok | map(select(.mode == "burst"))) as $rows | select($rows | length > 0) |
  "", "## Fan-in burst (the server pushes K messages to every connection at once; heartbeats every 1 s)", "",
  "| conns | K | size | client | drained msg/s | longest gap without an echo ms | echoes back when it began | longest heartbeat gap ms | client CPU µs/msg | complete | ÷ picows | ÷ raw C |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ($rows | group_by([.conns, .k]) | .[] |
    (group_by(.client) | map({client: .[0].client, conns: .[0].conns, k: .[0].k, size: .[0].size,
        mps: (map(.messages_per_s) | median), gap: (map(.max_gap_ms) | median),
        after: (map(.max_gap_after) | median),
        ping: (map(.max_ping_gap_ms) | median), complete: (map(.complete) | all),
        cpu: (map(if .messages > 0 then .client_cpu_s * 1e6 / .messages else 0 end) | median)})) as $g |
    ($g | map({(.client): .mps}) | add) as $by |
    $g[] | "| \(.conns) | \(.k) | \(.size) | \(.client) | \(.mps) | \(.gap) | \(.after // "-") | \(if .ping > 0 then .ping else "-" end) | \(.cpu | r1) | \(.complete) | \(ratio(.mps; $by.picows)) | \(ratio(.mps; $by["raw-c"])) |")
),
(
  ($all | ok | map(select(.allocs != null and (.mode == "echo" or .mode == "burst")))) as $rows | select($rows | length > 0) |
  "", "## Heap allocations per message (`--allocs`: libc's malloc, calloc, realloc and posix_memalign, counted by perf uprobes over the window; glibc's realloc of nothing and posix_memalign call malloc inside, so such a call counts twice; the traps slow the client, so this run's rates are not comparable)", "",
  "| scenario | conns | size | client | messages | allocations | per message |",
  "|---|---|---|---|---|---|---|",
  ($rows | group_by([.mode, .conns, .size]) | .[] | group_by(.client) | .[] |
    {mode: .[0].mode, conns: .[0].conns, size: .[0].size, client: .[0].client,
     messages: (map(.messages) | add), allocs: (map(.allocs) | add)} |
    "| \(.mode) | \(.conns) | \(.size) | \(.client) | \(.messages) | \(.allocs) | \(if .messages > 0 then (.allocs / .messages * 1000 | round / 1000) else "-" end) |")
),
(
  ($all | ok | map(select(.mode == "connect"))) as $rows | select($rows | length > 0) |
  "", "## Connection setup (each of N slots reconnects 100 ms after the server's Close; \($seconds) s windows)", "",
  "| slots | scheme | client | connects/s | client CPU µs/connect | CPU ÷ picows | CPU ÷ raw C |",
  "|---|---|---|---|---|---|---|",
  ($rows | group_by([.conns, .tls]) | .[] |
    (group_by(.client) | map({client: .[0].client, conns: .[0].conns, tls: .[0].tls,
        cps: (map(.connects_per_s) | median),
        cpu: (map(if .connects > 0 then .client_cpu_s * 1e6 / .connects else 0 end) | median)})) as $g |
    ($g | map({(.client): .cpu}) | add) as $by |
    $g[] | "| \(.conns) | \(if .tls then "wss" else "ws" end) | \(.client) | \(.cps) | \(.cpu | r1) | \(ratio(.cpu; $by.picows)) | \(ratio(.cpu; $by["raw-c"])) |")
),
(
  ($all | ok | map(select(.mode == "idle"))) as $rows | select($rows | length > 0) |
  "", "## Idle connections (\($idle) s windows, one heartbeat ping per connection every \($ping) s\(if $deflate != "" then "; permessage-deflate \($deflate), one compressed message each way per connection before the window" else "" end))", "",
  "| conns | client | RSS MiB | RSS KiB/conn | marginal KiB/conn | CPU % of a core | wake-ups/s | pings seen |",
  "|---|---|---|---|---|---|---|---|",
  ($rows | group_by(.client) | map(
      group_by(.conns) | map({client: .[0].client, conns: .[0].conns, seconds: .[0].seconds,
        rss: (map(.rss_kb) | median), cpu: (map(.client_cpu_s / .seconds * 100) | median),
        wake: (map(.wakeups / .seconds) | median), pings: (map(.pings) | median)}) | sort_by(.conns) |
      . as $by_n | map(. + {marginal: (if .conns == $by_n[0].conns then null
          else (.rss - $by_n[0].rss) / (.conns - $by_n[0].conns) end)})) | flatten | sort_by(.conns, .client) | .[] |
    "| \(.conns) | \(.client) | \(.rss / 1024 | r1) | \(.rss / .conns | r2) | \(if .marginal == null then "-" else (.marginal | r2 | tostring) end) | \(.cpu | r2) | \(.wake | r1) | \(.pings) |")
),
(
  ($all | map(select(.error != null or .mode == null))) as $bad | select($bad | length > 0) |
  "", "## Runs without a result", "", ($bad[] | "- \(.client): \(.error // "no result")")
)
