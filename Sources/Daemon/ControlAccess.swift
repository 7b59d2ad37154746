import Control
import EventLoop

/// Who may do what on the control socket (docs/security.md).
@LoopActor
struct ControlAccess {
    let tokens: TokenStore
    let operators: ControlServer.Operators

    /// Operators may do everything but answer or watch for a user without
    /// that user's token; others may only use a user's consent operations
    /// with the user's token (SPEC §4: nobody can answer for another user).
    func authorize(_ command: ControlCommand, _ client: ControlClient) throws(ControlError) {
        if command == .hello { return }
        if let (user, token) = command.consentUser {
            let needsToken: Bool
            switch command {
            case .consentWatch, .consentAnswer: needsToken = true
            default: needsToken = !client.isOperator
            }
            guard needsToken else { return }
            guard token != nil else {
                throw ControlError(.forbidden, "acting as \(user)'s consent channel needs \(user)'s token")
            }
            guard tokens.verify(token, for: user) else {
                throw ControlError(.forbidden, "wrong token for user \(user)")
            }
            return
        }
        guard client.isOperator else {
            throw ControlError(
                .forbidden,
                "\(client.peerDescription) may not operate wshostd (allowed: \(operators.description))")
        }
    }
}
