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
    /// The path (escaped for one line) and the reason.
    public var description: String { "\(DisplayPath.escape(path)): \(reason)" }
}

/// Expands files and folders (recursively) into input files, in a stable order.
///
/// Hidden entries (names starting with ".") inside folders are skipped, as are
/// the folders in `excluding` (the output folder, so a run never reads its own
/// outputs). Symbolic links are followed; a folder reached twice (a link
/// cycle) is walked once.
public struct InputWalker {
    /// Folders never walked into, such as the output folder.
    public var excluding: [String]
    /// Whether entries whose names start with "." are walked too.
    public var includeHidden: Bool

    /// A walker that skips the folders in `excluding` and, unless `includeHidden`, hidden entries.
    public init(excluding: [String] = [], includeHidden: Bool = false) {
        self.excluding = excluding
        self.includeHidden = includeHidden
    }

    /// The files that `arguments` (files and folders) name, in argument order and
    /// sorted by name within each folder, each file once; and what could not be walked.
    public func walk(_ arguments: [String]) -> (files: [InputFile], problems: [InputProblem]) {
        var files: [InputFile] = []
        var problems: [InputProblem] = []
        var visited = Set<FileIdentity>()
        let excluded = Set(excluding.compactMap { FileIdentity(path: $0) })
        var seenFiles = Set<FileIdentity>()

        for argument in arguments {
            guard let identity = FileIdentity(path: argument), let kind = FileIdentity.kind(of: argument) else {
                problems.append(InputProblem(path: argument, reason: "no such file or folder"))
                continue
            }
            if kind == .directory {
                walkFolder(
                    argument, relative: "", visited: &visited, excluded: excluded, seenFiles: &seenFiles,
                    files: &files, problems: &problems)
            } else if seenFiles.insert(identity).inserted {
                let name = argument.split(separator: "/").last.map(String.init) ?? argument
                files.append(InputFile(path: argument, relativePath: name, isExplicit: true))
            }
        }
        return (files, problems)
    }

    private func walkFolder(
        _ folder: String, relative: String, visited: inout Set<FileIdentity>, excluded: Set<FileIdentity>,
        seenFiles: inout Set<FileIdentity>, files: inout [InputFile], problems: inout [InputProblem]
    ) {
        guard let identity = FileIdentity(path: folder), !excluded.contains(identity) else { return }
        guard visited.insert(identity).inserted else { return }
        let entries: [[UInt8]]
        do {
            entries = try Platform.entries(of: folder)
        } catch {
            problems.append(InputProblem(path: folder, reason: "folder cannot be read: \(error.text)"))
            return
        }
        var names: [String] = []
        for raw in entries {
            guard let name = String(validating: raw, as: UTF8.self) else {
                problems.append(
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
            guard let kind = FileIdentity.kind(of: path) else {
                problems.append(InputProblem(path: path, reason: "broken link or vanished file"))
                continue
            }
            switch kind {
            case .directory:
                walkFolder(
                    path, relative: relativePath, visited: &visited, excluded: excluded, seenFiles: &seenFiles,
                    files: &files, problems: &problems)
            case .regular:
                if let identity = FileIdentity(path: path), seenFiles.insert(identity).inserted {
                    files.append(InputFile(path: path, relativePath: relativePath, isExplicit: false))
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
