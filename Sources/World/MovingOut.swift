extension Array {
    /// The element at `index`, moved out without a copy; `standIn` takes its
    /// place. For arrays of actions and effects carried out one by one:
    /// `for element in array` copies each element out whole (through the
    /// runtime's value witnesses, for the large enums), and destroys both the
    /// copy and the array's own. A stand-in with no references in it costs
    /// nothing to destroy.
    @inlinable
    public mutating func take(at index: Int, leaving standIn: Element) -> Element {
        var element = standIn
        swap(&element, &self[index])
        return element
    }
}
