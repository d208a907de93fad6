import Foundation

/// One input file found on the command line or in a folder.
public struct InputFile: Sendable, Equatable {
    /// The path to open.
    public var path: String
    /// Where it sits relative to the folder it was found in (its name alone for
    /// a file given directly); outputs mirror this under the output folder.
    public var relativePath: String
    /// Named on the command line rather than found in a folder.
    public var isExplicit: Bool

    /// An input at `path`, mirrored to `relativePath` in the output folder.
    public init(path: String, relativePath: String, isExplicit: Bool) {
        self.path = path
        self.relativePath = relativePath
        self.isExplicit = isExplicit
    }
}

/// An argument or folder entry that could not be walked.
public struct InputProblem: Sendable, Equatable, CustomStringConvertible {
    /// The argument or entry, as given or found.
    public var path: String
    /// Why it could not be walked.
    public var reason: String
    /// A setting that would let it be used, by its library name (a
    /// `Setting`'s raw value), and what it does: each front end spells the
    /// setting its own way (`message(naming:)`).
    public var hint: (setting: String, does: String)?
    /// The path (escaped for one line), the reason, and the hint with the setting's library name.
    public var description: String { message(naming: { $0 }) }

    /// The path (escaped for one line), the reason, and the hint, its setting spelled by `naming`.
    public func message(naming: (String) -> String) -> String {
        let hinted = hint.map { "; \(naming($0.setting)) \($0.does)" } ?? ""
        return "\(DisplayPath.escape(path)): \(reason)\(hinted)"
    }

    /// `path` (an argument, an entry, an address), why it could not be used,
    /// and the setting that would let it be.
    public init(path: String, reason: String, hint: (setting: String, does: String)? = nil) {
        self.path = path
        self.reason = reason
        self.hint = hint
    }

    /// The same path, reason and hint.
    public static func == (a: InputProblem, b: InputProblem) -> Bool {
        a.path == b.path && a.reason == b.reason && a.hint?.setting == b.hint?.setting && a.hint?.does == b.hint?.does
    }
}

/// A symbolic link found among the inputs whose target lies outside them:
/// skipped, not read (see `InputBounds`).
public struct SkippedLink: Sendable, Equatable, CustomStringConvertible {
    /// The link, as found.
    public var path: String
    /// Where it leads, every link resolved.
    public var target: String

    /// A link at `path` leading to `target`.
    public init(path: String, target: String) {
        self.path = path
        self.target = target
    }

    /// The link and where it leads (escaped for one line), and that it was skipped.
    public var description: String {
        "\(DisplayPath.escape(path)) is a link to \(DisplayPath.escape(target)), outside the inputs given; skipped"
    }
}

/// The inputs a run was given, judged by where they lead. A symbolic link
/// found among them (a folder entry, a prompt file, a manifest's reference)
/// is followed only when its target, every link resolved (`realpath`), lies
/// inside one of the inputs named (a folder, or a file itself); a link
/// leading anywhere else is skipped, unless `followsLinks` says to follow
/// every link. A folder of images is often someone else's: this keeps
/// `a.txt -> ~/.ssh/id_ed25519` from becoming a prompt sent to an endpoint.
public struct InputBounds: Sendable, Equatable {
    /// Whether links are followed wherever they lead, unless set otherwise: no.
    public static let followsLinksByDefault = false

    /// The inputs named, resolved (`realpath`); those that lead nowhere are left out.
    public var roots: [String]
    /// Follow links wherever they lead.
    public var followsLinks: Bool

    /// The bounds of `inputs` (files and folders, as named).
    public init(inputs: [String], followsLinks: Bool = followsLinksByDefault) {
        roots = inputs.compactMap(Platform.resolved)
        self.followsLinks = followsLinks
    }

    /// What may be read at a path.
    public enum Admission: Sendable, Equatable {
        /// Read it: no link, or a link leading inside the inputs (or links are followed).
        case admitted
        /// A link leading outside the inputs: skip it.
        case outside(SkippedLink)
        /// Nothing there, or a link leading nowhere.
        case missing
    }

    /// Whether `path` may be read: only its last component is judged (the
    /// folders above it were judged as they were walked into).
    public func admit(_ path: String) -> Admission {
        guard let found = Platform.linkStatus(path) else { return .missing }
        guard found.isLink else { return .admitted }
        guard let target = Platform.resolved(path) else { return .missing }
        return followsLinks || contains(resolved: target) ? .admitted : .outside(SkippedLink(path: path, target: target))
    }

    /// Whether a resolved path lies inside (or is) one of the inputs.
    public func contains(resolved path: String) -> Bool {
        roots.contains { path == $0 || path.hasPrefix($0 == "/" ? "/" : $0 + "/") }
    }
}

/// What a walk found: the files, what could not be walked, and the links
/// skipped because they lead outside the inputs.
public struct InputWalk: Sendable {
    /// The files, in argument order and sorted by name within each folder, each once.
    public var files: [InputFile] = []
    /// Arguments and entries that could not be walked.
    public var problems: [InputProblem] = []
    /// Links found in folders that lead outside the inputs: not walked.
    public var skippedLinks: [SkippedLink] = []
    /// The inputs' bounds, for reading what lies beside them (prompt files) by the same rule.
    public var bounds: InputBounds
}

/// Expands files and folders (recursively) into input files, in a stable order.
///
/// Hidden entries (names starting with ".") inside folders are skipped, as are
/// the folders in `excluding` (the output folder, so a run never reads its own
/// outputs). A symbolic link found in a folder is followed when it leads
/// inside the inputs named, else skipped and listed (`InputBounds`), unless
/// `followsLinks`; the arguments themselves are followed. A folder reached
/// twice (a link cycle) is walked once.
public struct InputWalker {
    /// Folders never walked into, such as the output folder.
    public var excluding: [String]
    /// Whether entries whose names start with "." are walked too.
    public var includeHidden: Bool
    /// Follow links found in folders wherever they lead (see `InputBounds`).
    public var followsLinks: Bool

    /// A walker that skips the folders in `excluding` and, unless
    /// `includeHidden`, hidden entries; links leading outside the inputs are
    /// skipped unless `followsLinks`.
    public init(excluding: [String] = [], includeHidden: Bool = false, followsLinks: Bool = InputBounds.followsLinksByDefault) {
        self.excluding = excluding
        self.includeHidden = includeHidden
        self.followsLinks = followsLinks
    }

    /// The files that `arguments` (files and folders) name, in argument order and
    /// sorted by name within each folder, each file once; what could not be
    /// walked; and the links skipped.
    public func walk(_ arguments: [String]) -> InputWalk {
        var walk = InputWalk(bounds: InputBounds(inputs: arguments, followsLinks: followsLinks))
        var visited = Set<FileIdentity>()
        let excluded = Set(excluding.compactMap { FileIdentity(path: $0) })
        var seenFiles = Set<FileIdentity>()

        for argument in arguments {
            guard let identity = FileIdentity(path: argument), let kind = FileIdentity.kind(of: argument) else {
                walk.problems.append(InputProblem(path: argument, reason: "no such file or folder"))
                continue
            }
            if kind == .directory {
                walkFolder(
                    argument, relative: "", visited: &visited, excluded: excluded, seenFiles: &seenFiles,
                    walk: &walk)
            } else if seenFiles.insert(identity).inserted {
                let name = argument.split(separator: "/").last.map(String.init) ?? argument
                walk.files.append(InputFile(path: argument, relativePath: name, isExplicit: true))
            }
        }
        return walk
    }

    private func walkFolder(
        _ folder: String, relative: String, visited: inout Set<FileIdentity>, excluded: Set<FileIdentity>,
        seenFiles: inout Set<FileIdentity>, walk: inout InputWalk
    ) {
        guard let identity = FileIdentity(path: folder), !excluded.contains(identity) else { return }
        guard visited.insert(identity).inserted else { return }
        let entries: [[UInt8]]
        do {
            entries = try Platform.entries(of: folder)
        } catch {
            walk.problems.append(InputProblem(path: folder, reason: "folder cannot be read: \(error.text)"))
            return
        }
        var names: [String] = []
        for raw in entries {
            guard let name = String(validating: raw, as: UTF8.self) else {
                walk.problems.append(
                    InputProblem(
                        path: join(folder, String(decoding: raw, as: UTF8.self)),
                        reason: "file name is not valid UTF-8, so it cannot be mirrored safely; rename it"))
                continue
            }
            if !includeHidden && name.hasPrefix(".") { continue }
            names.append(name)
        }
        names.sort()

        for name in names {
            let path = join(folder, name)
            let relativePath = relative.isEmpty ? name : relative + "/" + name
            if case .outside(let link) = walk.bounds.admit(path) {
                walk.skippedLinks.append(link)
                continue
            }
            guard let kind = FileIdentity.kind(of: path) else {
                walk.problems.append(InputProblem(path: path, reason: "broken link or vanished file"))
                continue
            }
            switch kind {
            case .directory:
                walkFolder(
                    path, relative: relativePath, visited: &visited, excluded: excluded, seenFiles: &seenFiles,
                    walk: &walk)
            case .regular:
                if let identity = FileIdentity(path: path), seenFiles.insert(identity).inserted {
                    walk.files.append(InputFile(path: path, relativePath: relativePath, isExplicit: false))
                }
            case .other:
                continue
            }
        }
    }

    private func join(_ folder: String, _ name: String) -> String {
        folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }
}

/// A file's device and inode, to recognise the same file under two names.
package struct FileIdentity: Hashable, Sendable {
    let device: UInt64
    let inode: UInt64

    package enum Kind { case regular, directory, other }

    /// The identity of what `path` names, following links; nil if nothing is there.
    package init?(path: String) {
        guard let status = Platform.status(path) else { return nil }
        self.init(status)
    }

    package init(_ status: Platform.Status) {
        device = status.device
        inode = status.inode
    }

    /// The kind of what `path` names, following links; nil if nothing is there.
    package static func kind(of path: String) -> Kind? {
        switch Platform.status(path)?.kind {
        case .directory?: .directory
        case .regular?: .regular
        case .other?: .other
        case nil: nil
        }
    }
}

/// Paths as printed: control characters escaped so one file is one line.
public enum DisplayPath {
    /// `path` with newlines, tabs and other control characters written as
    /// escapes (`\n`, `\x1B`), so one path prints as one line.
    public static func escape(_ path: String) -> String {
        var result = ""
        for scalar in path.unicodeScalars {
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                result += "\\x" + String(format: "%02X", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
