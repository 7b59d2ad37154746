import Control
import CoreMetrics
import EventLoop
import Foundation
import HostRuntime
import HostingCore
import Prometheus
import WebSocketClient
import World

/// The daemon's metrics (docs/operations.md), in swift-metrics' terms with a
/// Prometheus registry behind them, one per daemon (no global bootstrap).
///
/// Counting costs the message path nothing: the runtime and the hosting
/// core keep plain integers on the loop (`Runtime.Totals`, `Hosting.Tally`),
/// and a scrape adds what they gained since the previous one to the
/// counters, sets the gauges from the live state, and writes the text. Only
/// the two histograms are fed as things happen (a timer wake-up, a store
/// write: neither is per message).
@LoopActor
final class DaemonMetrics {
    /// What a scrape reads besides the runtime.
    struct Sample {
        var controlClients: Int
        var storageDegraded: Bool
        var configGeneration: Int
        var reloadFailed: Bool
        var inboundBytes: Int
    }

    static let prefix = "wshostd_"
    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let startTime = Date().timeIntervalSince1970

    private let loopLag: CoreMetrics.Timer
    private let storeWrites: CoreMetrics.Timer

    /// Counters fed from totals: each remembers the total it last reached.
    private final class Fed {
        let counter: CoreMetrics.Counter
        var last = 0
        init(_ counter: CoreMetrics.Counter) { self.counter = counter }
        func reach(_ total: Int) {
            if total > last { counter.increment(by: total - last) }
            last = max(last, total)
        }
    }
    private var fed: [String: Fed] = [:]
    private var gauges: [String: CoreMetrics.Gauge] = [:]

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            Self.prefix + "loop_lag_seconds": [
                .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
                .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5),
            ],
            Self.prefix + "state_store_write_seconds": [
                .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5),
            ],
        ]
        self.factory = factory
        loopLag = CoreMetrics.Timer(label: Self.prefix + "loop_lag_seconds", factory: factory)
        storeWrites = CoreMetrics.Timer(label: Self.prefix + "state_store_write_seconds", factory: factory)
        // Every labelled series exists from the start (at 0), so that rates and
        // alerts need no `or vector(0)`.
        let zero = Runtime.Totals()
        feedCounters(zero, Hosting.Tally())
    }

    /// How late the loop ran a due timer (`LoopTimers.onLag`).
    func loopLagged(_ lag: Duration) {
        loopLag.recordNanoseconds(lag.nanosecondsClamped)
    }

    /// One state-store write took `duration`.
    func storeWrote(in duration: Duration) {
        storeWrites.recordNanoseconds(duration.nanosecondsClamped)
    }

    /// The Prometheus text exposition (format 0.0.4) as of now.
    func scrape(_ runtime: Runtime, _ sample: Sample) -> [UInt8] {
        feedCounters(runtime.totals, runtime.tally)
        var states: [String: Int] = [:]
        for name in ["idle", "awaiting-consent", "connecting", "open", "waiting-to-retry", "denied", "stopped"] {
            states[name] = 0
        }
        let world = runtime.world
        for lifecycle in world.lifecycles.values {
            states[ControlView.stateName(lifecycle.state), default: 0] += 1
        }
        for (state, count) in states { gauge("records", ["state": state]).record(count) }
        gauge("sessions").record(world.sessions.count)
        gauge("users").record(world.users.count)
        gauge("objects").record(world.objects.count)
        gauge("sockets").record(runtime.liveSockets)
        gauge("consent_prompts_pending").record(runtime.consent.pendingCount)
        gauge("inbound_buffered_bytes").record(sample.inboundBytes)
        gauge("control_clients").record(sample.controlClients)
        gauge("state_store_degraded").record(sample.storageDegraded ? 1 : 0)
        gauge("config_generation").record(sample.configGeneration)
        gauge("config_last_reload_failed").record(sample.reloadFailed ? 1 : 0)
        let process = ProcessSample.read()
        gauge("resident_memory_bytes", prefix: "process_").record(process.residentBytes)
        gauge("open_fds", prefix: "process_").record(process.openFiles)
        gauge("start_time_seconds", prefix: "process_").record(startTime)
        return registry.emitToBuffer()
    }

    private func feedCounters(_ totals: Runtime.Totals, _ tally: Hosting.Tally) {
        counter("connection_attempts_total").reach(totals.attempts)
        counter("connections_opened_total").reach(totals.opened)
        for reason in WebSocketClient.AttemptFailure.allCases {
            counter("connection_failures_total", ["reason": reason.rawValue]).reach(totals.failures[reason] ?? 0)
        }
        counter("messages_received_total").reach(totals.messagesIn)
        counter("received_bytes_total").reach(totals.bytesIn)
        counter("messages_sent_total").reach(totals.messagesOut)
        counter("sent_bytes_total").reach(totals.bytesOut)
        counter("messages_dropped_total").reach(totals.dropped)
        counter("floods_total").reach(totals.floods)
        counter("sends_refused_total").reach(totals.sendsRefused)
        for limit in Hosting.Tally.Limit.allCases {
            counter("limit_hits_total", ["limit": limit.rawValue]).reach(tally.limitHits[limit] ?? 0)
        }
        counter("paced_attempts_total").reach(tally.pacedAttempts)
        counter("consent_prompts_total").reach(tally.prompts)
        for source in Hosting.Tally.Source.allCases {
            for verdict in [ConsentVerdict.allowed, .denied, .ignored] {
                let key = Hosting.Tally.Decision(verdict: verdict, source: source)
                // Only the pairs that can happen (an allow-list never denies, a timeout only ignores...).
                guard Self.possible(key) else { continue }
                counter("consent_decisions_total", ["verdict": Self.verdictName(verdict), "source": source.rawValue])
                    .reach(tally.decisions[key] ?? 0)
            }
        }
    }

    private func counter(_ name: String, _ labels: [String: String] = [:]) -> Fed {
        let key = Self.key(name, labels)
        if let existing = fed[key] { return existing }
        let made = Fed(
            CoreMetrics.Counter(
                label: Self.prefix + name, dimensions: labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
                factory: factory))
        fed[key] = made
        return made
    }

    private func gauge(_ name: String, _ labels: [String: String] = [:], prefix: String = prefix) -> CoreMetrics.Gauge {
        let key = Self.key(prefix + name, labels)
        if let existing = gauges[key] { return existing }
        let made = CoreMetrics.Gauge(
            label: prefix + name, dimensions: labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
            factory: factory)
        gauges[key] = made
        return made
    }

    private static func key(_ name: String, _ labels: [String: String]) -> String {
        labels.sorted { $0.key < $1.key }.reduce(name) { $0 + "|\($1.key)=\($1.value)" }
    }

    static func verdictName(_ verdict: ConsentVerdict) -> String {
        switch verdict {
        case .allowed: return "allowed"
        case .denied: return "denied"
        case .ignored: return "ignored"
        }
    }

    static func possible(_ decision: Hosting.Tally.Decision) -> Bool {
        switch (decision.source, decision.verdict) {
        case (.allowList, .allowed): return true
        case (.earlierDecision, .allowed), (.earlierDecision, .denied): return true
        case (.user, _): return true
        case (.timeout, .ignored): return true
        case (.headless, .denied), (.tooManyPending, .denied), (.emptyHost, .denied): return true
        default: return false
        }
    }
}

/// The process's memory and descriptors, from /proc (Linux).
struct ProcessSample {
    var residentBytes = 0
    var openFiles = 0

    static func read() -> ProcessSample {
        var sample = ProcessSample()
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
            if fields.count > 1, let pages = Int(fields[1]) {
                sample.residentBytes = pages * Int(sysconf(Int32(_SC_PAGESIZE)))
            }
        }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            sample.openFiles = entries.count
        }
        return sample
    }
}
