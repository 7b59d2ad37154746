import MonotonicTime
import Testing
import World

@testable import FleetCore

private func at(_ seconds: Double) -> MonotonicInstant { MonotonicInstant(nanoseconds: UInt64(seconds * 1e9)) }

private let timing = FleetTiming(lease: .seconds(15), renewDeadline: .seconds(10), retryPeriod: .seconds(2))

/// A member with epoch 3 that joined with a request sent at 0 s.
private func member() -> FleetMembership {
    var membership = FleetMembership(timing: timing)
    _ = membership.joined(epoch: 3, sentAt: at(100), generation: 0, now: at(100.01))
    return membership
}

@Suite struct FleetMembershipTests {
    @Test func joiningMakesAMemberValidFromTheSendingOnly() {
        let membership = member()
        #expect(membership.epoch == 3)
        // Counted from when the join was sent, not from when it was answered.
        #expect(membership.validUntil == at(110))
        #expect(membership.held.isEmpty)
    }

    @Test func aJoinAnsweredPastTheDeadlineIsNotTrusted() {
        var membership = FleetMembership(timing: timing)
        _ = membership.joined(epoch: 1, sentAt: at(0), generation: 0, now: at(10))
        #expect(membership.epoch == nil)
    }

    @Test func aRoundHoldsWhatTheDatabaseSaysAndExtendsTheDeadlineFromItsSending() {
        var membership = member()
        let effects = membership.renewed(
            epoch: 3, sessions: ["a": 1, "b": 4], sentAt: at(102), generation: 0, now: at(109))
        #expect(effects == [.hold(["a": 1, "b": 4])])
        #expect(membership.validUntil == at(112))
        // The same sessions again: nothing to do.
        #expect(
            membership.renewed(epoch: 3, sessions: ["a": 1, "b": 4], sentAt: at(104), generation: 0, now: at(104.1))
                .isEmpty)
        // A session moved away: hold the rest.
        #expect(
            membership.renewed(epoch: 3, sessions: ["b": 4], sentAt: at(106), generation: 0, now: at(106.1)) == [
                .hold(["b": 4])
            ])
    }

    @Test func noRenewalByTheDeadlineFencesBeforeTheLeaseCanExpire() {
        var membership = member()
        _ = membership.renewed(epoch: 3, sessions: ["a": 1], sentAt: at(102), generation: 0, now: at(102.1))
        #expect(membership.check(now: at(111.9)).isEmpty)
        let effects = membership.check(now: at(112))
        // Aborted by 112 + (15 - 10) / 2: the lease runs to at least 102 + 15 on the database's clock.
        #expect(effects == [.fence(reason: "lease not renewed within 10.0 seconds", abortAt: at(114.5))])
        #expect(membership.epoch == nil)
        #expect(membership.held.isEmpty)
        #expect(membership.fences == 1)
        // Nothing more until it joined again.
        #expect(membership.check(now: at(200)).isEmpty)
    }

    @Test func aHostThatNoticesLateAbortsAtOnce() {
        var membership = member()
        // Paused (SIGSTOP) from 101 to 140: the check runs late.
        let effects = membership.check(now: at(140))
        guard case .fence(_, let abortAt) = effects.first else {
            Issue.record("no fence: \(effects)")
            return
        }
        #expect(abortAt <= at(140))
    }

    @Test func answersFromBeforeAFenceAreStale() {
        var membership = member()
        let generation = membership.generation
        _ = membership.check(now: at(110))
        // A round sent before the fence, answered after it, holds nothing.
        #expect(
            membership.renewed(epoch: 3, sessions: ["a": 1], sentAt: at(109), generation: generation, now: at(110.5))
                .isEmpty)
        #expect(membership.held.isEmpty)
        // Joining again takes a new epoch.
        _ = membership.joined(epoch: 4, sentAt: at(111), generation: membership.generation, now: at(111.1))
        #expect(membership.epoch == 4)
    }

    @Test func aRoundAnsweredAfterItsOwnDeadlineFences() {
        var membership = member()
        let effects = membership.renewed(epoch: 3, sessions: ["a": 1], sentAt: at(101), generation: 0, now: at(111.5))
        #expect(effects.count == 1)
        if case .fence = effects.first {} else { Issue.record("expected a fence, got \(effects)") }
        #expect(membership.held.isEmpty)
    }

    @Test func losingTheMembershipFencesAtOnce() {
        var membership = member()
        _ = membership.renewed(epoch: 3, sessions: ["a": 1], sentAt: at(102), generation: 0, now: at(102.1))
        let effects = membership.membershipLost(reason: "epoch over", now: at(103))
        #expect(effects == [.fence(reason: "epoch over", abortAt: at(105.5))])
        #expect(membership.epoch == nil)
    }

    @Test func timingProblems() {
        #expect(FleetTiming().problem == nil)
        #expect(FleetTiming(lease: .seconds(11), renewDeadline: .seconds(10)).problem != nil)
        #expect(FleetTiming(lease: .seconds(15), renewDeadline: .seconds(10), retryPeriod: .seconds(6)).problem != nil)
        #expect(FleetTiming().fenceGrace == .milliseconds(2500))
    }

    @Test func pastItsFairShareAHostHandsTheExcessOverInBatches() {
        var membership = FleetMembership(timing: timing, batch: 2)
        _ = membership.joined(epoch: 1, sentAt: at(100), generation: 0, now: at(100))
        let all: [SessionID: Int64] = ["a": 1, "b": 1, "c": 1, "d": 1, "e": 1]
        let first = membership.renewed(epoch: 1, sessions: all, share: 2, sentAt: at(101), generation: 0, now: at(101))
        // Two a round: e and d go, c stays for the next round.
        #expect(first == [.hold(["a": 1, "b": 1, "c": 1]), .release(["d", "e"])])
        #expect(membership.releasing == ["d", "e"])
        // The database still lists d and e until the release is stored: they stay released, c goes too.
        let second = membership.renewed(epoch: 1, sessions: all, share: 2, sentAt: at(103), generation: 0, now: at(103))
        #expect(second == [.hold(["a": 1, "b": 1]), .release(["c"])])
        membership.released(["d", "e"])
        // Stored and no longer listed: nothing left to release but c.
        let third = membership.renewed(
            epoch: 1, sessions: ["a": 1, "b": 1, "c": 1], share: 2, sentAt: at(105), generation: 0, now: at(105))
        #expect(third.isEmpty)
        #expect(membership.releasing == ["c"])
        // Within the share: nothing is handed over.
        let fourth = membership.renewed(
            epoch: 1, sessions: ["a": 1, "b": 1], share: 3, sentAt: at(107), generation: 0, now: at(107))
        #expect(fourth.isEmpty)
        #expect(membership.releasing.isEmpty)
    }

    @Test func movedAndDrainedSessionsAreHandedOverPinnedOnesStay() {
        var membership = FleetMembership(timing: timing, batch: 10)
        _ = membership.joined(epoch: 1, sentAt: at(100), generation: 0, now: at(100))
        let all: [SessionID: Int64] = ["a": 1, "b": 1, "c": 1, "d": 1]
        // d is pinned elsewhere (an operator's move): handed over although within the share.
        let moved = membership.renewed(
            epoch: 1, sessions: all, share: 4, handOver: ["d"], sentAt: at(101), generation: 0, now: at(101))
        #expect(moved == [.hold(["a": 1, "b": 1, "c": 1]), .release(["d"])])
        // Past the share, a pinned session is never the one to go: c is pinned here, b goes.
        membership.released(["d"])
        let balanced = membership.renewed(
            epoch: 1, sessions: ["a": 1, "b": 1, "c": 1], share: 2, pinned: ["c"], sentAt: at(103), generation: 0,
            now: at(103))
        #expect(balanced == [.hold(["a": 1, "c": 1]), .release(["b"])])
    }
}
