/// SPEC §3: which user hosts a record's connection.
public enum HandlingUserResolver {
    /// Where the chosen user came from, for logs and status.
    public enum Source: String, Equatable, Sendable {
        case pinned, wornBy, definedUser, spawnedBy, interactingUser, sessionHost
    }

    /// The handling user for `setting` on `object` in `session`, or nil when
    /// nobody applicable is present (then the record has no effective target).
    ///
    /// Automatic: the first *present* user of wornBy → definedUser → spawnedBy →
    /// interactingUser → the session's host. Pinned: that user, only while present.
    public static func resolve(
        _ setting: HandlingUserSetting, object: WorldObject, session: Session
    ) -> (user: UserID, source: Source)? {
        switch setting {
        case .pinned(let user):
            return session.present.contains(user) ? (user, .pinned) : nil
        case .automatic:
            let candidates: [(UserID?, Source)] = [
                (object.wornBy, .wornBy), (object.definedUser, .definedUser), (object.spawnedBy, .spawnedBy),
                (object.interactingUser, .interactingUser), (session.host, .sessionHost),
            ]
            for case (let user?, let source) in candidates where session.present.contains(user) {
                return (user, source)
            }
            return nil
        }
    }
}
