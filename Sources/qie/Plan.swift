import ArgumentParser
import Foundation
import QieImaging
import QiePipeline
import QieFiles
import QieProviders

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show, per image, the size an endpoint gets and the resize, padding or crop to reach it.",
        discussion: "Reads headers only. The restore line says how to undo the plan on the edited result.")

    @Argument(help: "Image files or folders.", completion: .file())
    var inputs: [String]

    @OptionGroup var endpoint: ProviderOptions

    @OptionGroup var links: LinkOptions

    @Option(help: "Ask for this exact size (WxH) instead of the planned one.")
    var size: String?

    @Option(help: "contain (pad, default), cover (crop) or fill (stretch).")
    var fit = Edit.defaults.options.fit

    @Option(help: "Where the image sits in the padding or which part a crop keeps (see `qie prepare --help`).")
    var position = Edit.defaults.options.position.rawValue

    @Flag(help: "One JSON object per file.")
    var json = false

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one file or folder") }
        if Position(parsing: position) == nil { throw ValidationError("--position \"\(position)\" is not a position") }
    }

    func run() throws {
        var options = try endpoint.editOptions()
        options.size = try endpoint.sizeRequest(size: size)
        options.fit = fit
        options.position = Position(parsing: position) ?? .centre
        try Flags.validating { try options.validatePlanning() }
        let (files, problems) = links.walk(inputs)
        for problem in problems { TextStream.standardError.write("error \(problem)\n") }
        var failed = problems.count
        var out = LineBuffer()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let planned = try Flags.validating { try options.plan(files) }
        for item in planned {
            let file = item.input
            let path = DisplayPath.escape(file.path)
            switch item.plan {
            case .success(let (_, plan)):
                if json {
                    let line = PlanLine(path: file.path, endpoint: item.endpoint, plan: plan, paddingFraction: plan.paddingFraction)
                    out.add(String(decoding: try encoder.encode(line), as: UTF8.self))
                } else {
                    out.add("\(path): \(options.routing != nil ? "on \(item.endpoint ?? ""): " : "")\(describe(plan))")
                }
            case .failure(let error):
                let skipped = item.skipped
                if !skipped { failed += 1 }
                out.add(skipped ? "\(path): skipped, not an image" : "\(path): error: \(reason(error))")
            }
        }
        if let routing = options.routing {
            // What each image's pick saves against each endpoint alone.
            let totals = try Flags.validating { try options.endpointTotals(planned.map(\.offers).filter { !$0.isEmpty }) }
            for line in routeLines(totals, policy: routing.policy) { out.add(line) }
        }
        out.flush()
        if failed > 0 { throw ExitCode(1) }
    }

    private func describe(_ plan: SizePlan) -> String {
        let g = plan.geometry
        var text = "\(plan.input) -> \(plan.target) \(plan.fit.rawValue)"
        var steps = ["resize to \(g.resized)"]
        if let crop = g.crop { steps.append("crop \(crop)") }
        if !g.padding.isEmpty {
            steps.append("pad top \(g.padding.top) right \(g.padding.right) bottom \(g.padding.bottom) left \(g.padding.left)")
        }
        text += " (" + steps.joined(separator: ", ") + String(format: "; %.1f%% padding)", plan.paddingFraction * 100)
        if !plan.fields.isEmpty {
            text += "; sends " + plan.fields.map { "\($0.name)=\($0.value)" }.joined(separator: " ")
        }
        text += "; restore: crop \(g.contentRect) of a \(plan.target) result, resize to \(plan.input)"
        return text
    }
}

private struct PlanLine: Encodable {
    var path: String
    var endpoint: String?
    var plan: SizePlan
    var paddingFraction: Double
}
