import ArgumentParser
import QieFiles
import QieImaging

@main
struct Qie: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qie",
        abstract: "Prepare images for hosted Qwen Image Edit endpoints and post-process their results.",
        version: "0.1.0 (libvips \(ImagingRuntime.libvipsVersion))",
        subcommands: [
            Probe.self, Prepare.self, Plan.self, Cost.self, Providers.self, Edit.self, Resume.self, Status.self, Emulate.self, Serve.self,
        ]
    )

    static func main() async {
        ImagingRuntime.limitMallocArenas(2)
        await main(nil)
    }
}

/// Header limits shared by every command that reads images.
struct LimitOptions: ParsableArguments {
    @Option(help: "Refuse images over this many megapixels, judged from the header before decoding.")
    var maxMegapixels: Double = ImageLimits.default.maxMegapixels

    @Option(help: "Refuse images with a side longer than this many pixels.")
    var maxSide: Int = ImageLimits.default.maxSide

    var limits: ImageLimits { ImageLimits(maxMegapixels: maxMegapixels, maxSide: maxSide) }

    func validate() throws {
        guard maxMegapixels > 0 else {
            throw ValidationError("--max-megapixels must be positive, got \(maxMegapixels)")
        }
        guard maxSide > 0 else { throw ValidationError("--max-side must be positive, got \(maxSide)") }
    }
}

/// How links among the inputs are treated, shared by every command that walks folders.
struct LinkOptions: ParsableArguments {
    @Flag(
        name: .customLong("follow-links"),
        help: "Follow symbolic links among the inputs wherever they lead (default: only links whose target lies inside the inputs named; others are skipped with a warning).")
    var followLinks = InputBounds.followsLinksByDefault

    /// Walks `inputs` (skipping the folders in `excluding`), printing a
    /// warning for each link skipped; the files, and what could not be walked.
    func walk(_ inputs: [String], excluding: [String] = []) -> (files: [InputFile], problems: [InputProblem]) {
        let walk = InputWalker(excluding: excluding, followsLinks: followLinks).walk(inputs)
        for link in walk.skippedLinks { TextStream.standardError.write(Self.warning(link)) }
        return (walk.files, walk.problems)
    }

    /// The warning line for a link skipped because it leads outside the inputs.
    static func warning(_ link: SkippedLink) -> String { "warning \(link) (\(Flags.name(.followLinks)) follows it)\n" }
}
