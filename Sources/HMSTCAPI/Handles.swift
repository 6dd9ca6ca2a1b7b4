// Handles: opaque C pointers to retained Swift boxes, with a registry of live handles so a
// NULL, freed or garbage pointer is reported as INVALID_ARGUMENT without ever being
// dereferenced. _free is the only place a box is released.
import HMSTCore

final class HandleRegistry: @unchecked Sendable {
    static let shared = HandleRegistry()
    private let live = Locked<[UnsafeMutableRawPointer: ObjectIdentifier]>([:])

    func register<T: AnyObject>(_ object: T) -> OpaquePointer {
        let p = Unmanaged.passRetained(object).toOpaque()
        live.withLock { $0[p] = ObjectIdentifier(T.self) }
        return OpaquePointer(p)
    }

    /// The live object of type T behind `handle`, or an error naming the parameter.
    func resolve<T: AnyObject>(_ handle: OpaquePointer?, as _: T.Type, _ name: String) throws -> T {
        guard let handle else { throw HMSTError.invalidArgument("\(name) must not be NULL") }
        let p = UnsafeMutableRawPointer(handle)
        let kind = live.withLock { $0[p] }
        guard kind == ObjectIdentifier(T.self) else {
            throw HMSTError.invalidArgument("\(name) is not a live \(String(describing: T.self)) handle (freed, or never created by hmst)")
        }
        return Unmanaged<T>.fromOpaque(p).takeUnretainedValue()
    }

    /// Releases a live handle of type T; NULL and unknown pointers are ignored (free is total).
    @discardableResult
    func release<T: AnyObject>(_ handle: OpaquePointer?, as _: T.Type) -> Bool {
        guard let handle else { return false }
        let p = UnsafeMutableRawPointer(handle)
        let removed = live.withLock { map -> Bool in
            guard map[p] == ObjectIdentifier(T.self) else { return false }
            map[p] = nil
            return true
        }
        if removed { Unmanaged<T>.fromOpaque(p).release() }
        return removed
    }

    func count<T: AnyObject>(of _: T.Type) -> Int {
        live.withLock { $0.values.filter { $0 == ObjectIdentifier(T.self) }.count }
    }
}
