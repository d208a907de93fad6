import Foundation
import QieFiles
import QieImaging
import QiePipeline
import Testing

@Suite("Walking inputs")
struct InputWalkerTests {
    @Test("Folders are walked recursively in sorted order; hidden entries and the output folder are skipped")
    func walk() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        try folder.write("in/b.jpg", Data([1]))
        try folder.write("in/a.png", Data([1]))
        try folder.write("in/sub/deeper/c.webp", Data([1]))
        try folder.write("in/.hidden.jpg", Data([1]))
        try folder.write("in/.git/config", Data([1]))
        try folder.write("in/out/old.jpg", Data([1]))
        let walk = InputWalker(excluding: [folder.path + "/in/out"]).walk([folder.path + "/in"])
        let (files, problems) = (walk.files, walk.problems)
        #expect(problems.isEmpty)
        #expect(files.map(\.relativePath) == ["a.png", "b.jpg", "sub/deeper/c.webp"])
        #expect(files.allSatisfy { !$0.isExplicit })
    }

    @Test("Missing arguments are problems; the same file twice is listed once; a link cycle ends")
    func oddities() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let a = try folder.write("in/a.jpg", Data([1]))
        try FileManager.default.createSymbolicLink(atPath: folder.path + "/in/loop", withDestinationPath: folder.path + "/in")
        let walk = InputWalker().walk([a, folder.path + "/in", folder.path + "/nope.jpg"])
        let (files, problems) = (walk.files, walk.problems)
        #expect(files.count == 1)
        #expect(files.first?.isExplicit == true)
        #expect(problems.map(\.reason) == ["no such file or folder"])
    }

    @Test("A link is followed only where it leads inside the inputs named; one leading elsewhere is skipped and listed, unless links are followed")
    func linksStayInside() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        try folder.write("in/a.jpg", Data([1]))
        try folder.write("in/real/b.jpg", Data([1]))
        try folder.write("other/c.jpg", Data([1]))
        try folder.write("secret/key.jpg", Data([1]))
        try folder.write("secret/more.jpg", Data([1]))
        let link = { (name: String, target: String) in
            try FileManager.default.createSymbolicLink(atPath: folder.path + "/in/" + name, withDestinationPath: target)
        }
        try link("inside.jpg", folder.path + "/in/real/b.jpg")
        try link("named.jpg", folder.path + "/other/c.jpg")
        try link("away.jpg", folder.path + "/secret/key.jpg")
        try link("climb", "../secret")
        let inputs = [folder.path + "/in", folder.path + "/other"]
        let walk = InputWalker().walk(inputs)
        // Links leading inside are followed, each file listed once (in/real/b.jpg
        // is inside.jpg, other/c.jpg is named.jpg: other/ was named too).
        #expect(walk.files.map(\.relativePath) == ["a.jpg", "inside.jpg", "named.jpg"], "\(walk.files)")
        #expect(walk.problems.isEmpty)
        let secret = try #require(Platform.resolved(folder.path + "/secret"))
        #expect(
            walk.skippedLinks == [
                SkippedLink(path: folder.path + "/in/away.jpg", target: secret + "/key.jpg"),
                SkippedLink(path: folder.path + "/in/climb", target: secret),
            ])
        #expect(walk.skippedLinks[0].description.contains("outside the inputs"))

        let followed = InputWalker(followsLinks: true).walk(inputs)
        #expect(followed.skippedLinks.isEmpty)
        #expect(followed.files.map(\.relativePath) == ["a.jpg", "away.jpg", "climb/more.jpg", "inside.jpg", "named.jpg"])

        // Prompt files beside an image are judged by the same bounds.
        try folder.write("secret/words.txt", Data("the secret".utf8))
        try link("a.txt", folder.path + "/secret/words.txt")
        var prompts = PromptManifest()
        prompts.bounds = InputWalker().walk(inputs).bounds
        #expect(prompts.request(for: folder.path + "/in/a.jpg") == nil)
        #expect(prompts.skippedPromptFile(for: folder.path + "/in/a.jpg")?.target == secret + "/words.txt")
        #expect(prompts.promptFileProblem(for: folder.path + "/in/a.jpg")?.contains("outside the inputs") == true)
        prompts.bounds?.followsLinks = true
        #expect(prompts.request(for: folder.path + "/in/a.jpg")?.prompt == "the secret")
    }

    @Test("Names with spaces, unicode and a leading dash are walked as they are")
    func oddNames() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        for name in ["with space.jpg", "ünïcødé 写真.png", "-dash.jpg"] { try folder.write("in/" + name, Data([1])) }
        let files = InputWalker().walk([folder.path + "/in"]).files
        #expect(Set(files.map(\.relativePath)) == ["with space.jpg", "ünïcødé 写真.png", "-dash.jpg"])
    }
}

@Suite("Writing outputs")
struct OutputFolderTests {
    @Test("Writes create folders, replace atomically and leave no temporary files")
    func atomicWrite() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let out = try OutputFolder(path: folder.path + "/out")
        try out.write(Data("one".utf8), to: "a/b/c.jpg")
        try out.write(Data("two".utf8), to: "a/b/c.jpg")
        #expect(try String(contentsOfFile: folder.path + "/out/a/b/c.jpg", encoding: .utf8) == "two")
        #expect(folder.listing() == ["out/a/b/c.jpg"])
    }

    @Test("A symbolic link inside the output folder is never written through")
    func refusesLinks() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        try FileManager.default.createDirectory(atPath: folder.path + "/elsewhere", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: folder.path + "/out", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: folder.path + "/out/sub", withDestinationPath: folder.path + "/elsewhere")
        let out = try OutputFolder(path: folder.path + "/out")
        let error = #expect(throws: OutputError.self) { try out.write(Data("x".utf8), to: "sub/x.jpg") }
        #expect(error?.reason.contains("is a link") == true)
        #expect(!folder.exists("elsewhere/x.jpg"))

        // A link at the file's own name is refused, naming it: neither followed nor replaced.
        try folder.write("elsewhere/y.jpg", Data("theirs".utf8))
        try FileManager.default.createSymbolicLink(atPath: folder.path + "/out/y.jpg", withDestinationPath: folder.path + "/elsewhere/y.jpg")
        let planted = #expect(throws: OutputError.self) { try out.write(Data("y".utf8), to: "y.jpg") }
        #expect(planted?.path == folder.path + "/out/y.jpg" && planted?.reason.contains("symbolic link") == true, "\(String(describing: planted))")
        #expect(try String(contentsOfFile: folder.path + "/elsewhere/y.jpg", encoding: .utf8) == "theirs")
        let attributes = try FileManager.default.attributesOfItem(atPath: folder.path + "/out/y.jpg")
        #expect(attributes[.type] as? FileAttributeType == .typeSymbolicLink)
        #expect(folder.listing().filter { $0.contains(".tmp") }.isEmpty, "no temporary file left")
    }

    @Test("Paths that climb out of the folder are refused")
    func refusesDotDot() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let out = try OutputFolder(path: folder.path + "/out")
        #expect(throws: OutputError.self) { try out.write(Data("x".utf8), to: "../x.jpg") }
        #expect(!folder.exists("x.jpg"))
    }

    @Test("The input is never replaced by its own output")
    func protectsInput() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let input = try folder.write("out/photo.jpg", Data("original".utf8))
        let out = try OutputFolder(path: folder.path + "/out")
        let error = #expect(throws: OutputError.self) {
            try out.write(Data("new".utf8), to: "photo.jpg", protecting: input)
        }
        #expect(error?.reason.contains("replace its own input") == true)
        #expect(try String(contentsOfFile: input, encoding: .utf8) == "original")
    }

    @Test("Inputs that share a name keep their extension in the output name")
    func naming() {
        let inputs = ["a.png", "a.jpg", "b.jpg", "sub/a.jpg", "noext"].map {
            InputFile(path: $0, relativePath: $0, isExplicit: false)
        }
        let naming = OutputNaming(inputs)
        let names = inputs.map { naming.relativeOutputPath(for: $0, format: .webp) }
        #expect(names == ["a.png.webp", "a.jpg.webp", "b.webp", "sub/a.webp", "noext.webp"])
    }

    @Test("No output name meets another's numbered results or copies, or qie's own files")
    func namingCollisions() {
        func bases(_ paths: [String], copies: Int = 1, results: Int = 1, sidecars: Bool = true) -> [String] {
            let inputs = paths.map { InputFile(path: $0, relativePath: $0, isExplicit: false) }
            let naming = OutputNaming(inputs, copies: copies, resultsPerRequest: results, sidecars: sidecars)
            return inputs.map(naming.base(for:))
        }
        // a.jpg's second result is a-2; input a-2.jpg moves aside, a.jpg keeps its names.
        #expect(bases(["a.jpg", "a-2.jpg", "b.jpg"], results: 2) == ["a", "a-2.jpg", "b"])
        #expect(bases(["a.jpg", "A-1.png"], copies: 2, results: 2) == ["a", "A-1.png"], "a's image a-1-1 and A-1's sidecar A-1-1")
        #expect(bases(["a.jpg", "a-1.jpg"]) == ["a", "a-1"], "one result, one copy: no numbers, no clash")
        // report.jpg's sidecar would be report.json; only at the top of the folder.
        #expect(bases(["report.jpg", "sub/report.jpg", "Report.png"]) == ["report.jpg", "sub/report", "Report.png"])
        #expect(bases(["report.jpg"], sidecars: false) == ["report"], "no sidecars (prepare): nothing to clash with")
        #expect(bases(["report-thumbs/x.jpg", "report-thumbs.jpg"]) == ["report-thumbs-input/x", "report-thumbs"])
        // Every name each input writes, with three results and two copies, is distinct.
        let paths = ["a.jpg", "a-1.jpg", "a-1-2.jpg", "a-2-1.png", "report.jpg"]
        let found = bases(paths, copies: 2, results: 3)
        var written: [String] = []
        for base in found {
            for copy in 1...2 {
                written.append("\(base)-\(copy)".lowercased())
                written += (1...3).map { "\(base)-\(copy)-\($0)".lowercased() }
            }
        }
        #expect(Set(written).count == written.count && !written.contains("report"), "\(found)")
    }
    @Test("A name template: each placeholder, an empty {dir} with its slash left out, {index} over copies and results; plain names as before")
    func templates() throws {
        let template = try OutputNameTemplate("{dir}/{stem}-night-{index}.{ext}")
        #expect(template.name(relativePath: "sub/deep/photo.jpg", index: 2, fileExtension: "png") == "sub/deep/photo-night-2.png")
        #expect(template.name(relativePath: "photo.tar.jpg", index: 1, fileExtension: "webp") == "photo.tar-night-1.webp")
        let inputs = ["a.jpg", "sub/b.jpg"].map { InputFile(path: "/in/" + $0, relativePath: $0, isExplicit: false) }
        // Two requests of two results each: {index} numbers all four; a sidecar is named after its request's first result.
        let naming = try OutputNaming(inputs, copies: 2, resultsPerRequest: 2, sidecars: true, template: template, format: .png)
        #expect(naming.resultPath(for: inputs[1], copy: 2, result: 1, of: 2, format: .png) == "sub/b-night-4.png")
        #expect(naming.resultPath(for: inputs[0], copy: 1, result: 0, of: 2, format: .png) == "a-night-1.png")
        #expect(naming.sidecarPath(for: inputs[1], copy: 2) == "sub/b-night-3.json")
        let single = try OutputNaming(inputs, template: try OutputNameTemplate("{stem}-{index}.{ext}"))
        #expect(single.relativeOutputPath(for: inputs[1], format: .jpeg) == "b-1.jpg")
        // Without a template, the names are the inputs' own, numbered as before.
        let plain = OutputNaming(inputs, copies: 2, resultsPerRequest: 2, sidecars: true)
        #expect(plain.resultPath(for: inputs[0], copy: 2, result: 0, of: 2, format: .png) == "a-2-1.png")
        #expect(plain.resultPath(for: inputs[0], copy: 0, result: 0, of: 1, format: .png) == "a.png")
        #expect(plain.sidecarPath(for: inputs[0], copy: 2) == "a-2.json")
    }

    @Test("A name template is refused when malformed, leaving the folder, without {index} for several results, or giving two results one name")
    func templateRefusals() throws {
        let refused: [(String, String)] = [
            ("", "is missing"), ("{stem}.png", "must end with .{ext}"), ("x/../{stem}.{ext}", "has a .. part"),
            (".{dir}/{stem}.{ext}", "has a . part"), ("{stem", "unmatched brace"), ("{stem}}.{ext}", "unmatched brace"),
            ("/{stem}.{ext}", "starts with /"), ("{size}.{ext}", "names {size}, which is not a placeholder"),
        ]
        for (text, words) in refused {
            #expect(throws: SettingError.self, "\(text)") { try OutputNameTemplate(text) }
            do {
                _ = try OutputNameTemplate(text)
            } catch {
                #expect(error.setting == .outputName && error.description.contains(words), "\(text): \(error)")
            }
        }
        let inputs = ["a.jpg", "a.png", "x/c.jpg"].map { InputFile(path: "/in/" + $0, relativePath: $0, isExplicit: false) }
        func refusal(_ text: String, copies: Int = 1, sidecars: Bool = false, format: OutputFormat? = nil) -> String? {
            do {
                _ = try OutputNaming(inputs, copies: copies, sidecars: sidecars, template: try OutputNameTemplate(text), format: format)
                return nil
            } catch {
                return error.description
            }
        }
        #expect(refusal("{stem}.{ext}")?.contains("gives both /in/a.jpg and /in/a.png the name a.{ext}") == true)
        #expect(refusal("{stem}.{ext}", format: .webp)?.contains("the name a.webp; add a placeholder") == true)
        #expect(refusal("{dir}/{stem}-{index}.{ext}", copies: 2) != nil, "a.jpg and a.png still meet")
        #expect(refusal("{stem}-x.{ext}", copies: 2)?.contains("has no {index}, and each input has 2 results") == true)
        #expect(refusal("report.{ext}", sidecars: true)?.contains("the name report.json, which is qie's own") == true)
        #expect(refusal("report-thumbs/{stem}-{index}.{ext}", sidecars: true)?.contains("qie's own") == true)
    }
}
