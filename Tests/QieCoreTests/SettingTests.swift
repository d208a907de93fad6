import QieCore
import Testing

@Suite("Settings named by each front end")
struct SettingTests {
    /// The command line's spelling, as the `qie` executable renders it.
    private func flag(_ setting: Setting) -> String {
        setting == .callbackURL ? "--callback-url" : "--" + setting.rawValue.replacing(/[A-Z]/) { "-" + $0.output.lowercased() }
    }

    @Test("A refused value names the setting, the value and what is accepted, in each front end's words")
    func invalid() {
        let error = SettingError(.maxCost, value: "\"abc\"", .invalid(expected: "a positive amount in USD such as 5 or 12.50"))
        #expect(error.description == "maxCost must be a positive amount in USD such as 5 or 12.50; got \"abc\"")
        #expect(error.message(naming: flag) == "--max-cost must be a positive amount in USD such as 5 or 12.50; got \"abc\"")
        #expect(error.message(naming: { _ in "max_cost" }).hasPrefix("max_cost must be"))
    }

    @Test("Every problem's wording: not offered, not taken, needs, only with, explained with settings inside")
    func problems() {
        #expect(
            SettingError(.flow, value: "poll", .notOffered(by: "lumenfall", offered: ["sync"])).message(naming: flag)
                == "lumenfall does not offer --flow poll; it offers sync")
        #expect(
            SettingError(.negativePrompt, .notTaken(by: "runpod", takes: [.seed])).message(naming: flag)
                == "runpod does not take --negative-prompt; it takes --seed, --format and the size")
        #expect(
            SettingError(.callbackURL, .notTaken(by: "oxen", takes: [])).description
                == "oxen does not take callbackURL; it takes no optional fields, format and the size")
        #expect(
            SettingError(.flow, value: "callback", .needs([.callbackURL], why: "the address runflow will POST to"))
                .message(naming: flag) == "--flow callback needs --callback-url, the address runflow will POST to")
        #expect(
            SettingError(.callbackURL, .onlyWith(.flow, value: "callback")).message(naming: flag)
                == "--callback-url goes with --flow callback")
        let phrase: Phrase = "chooses a crop, so it needs \(setting: .fit) cover"
        #expect(
            SettingError(.position, value: "attention", .explained(phrase)).message(naming: flag)
                == "--position attention chooses a crop, so it needs --fit cover")
        #expect(
            SettingError(.size, .notAccepted(by: "runpod", what: "size 1000x1000", accepts: "sizes 1024*1024")).message(naming: flag)
                == "runpod does not take size 1000x1000; it accepts sizes 1024*1024")
    }

    @Test("A phrase keeps its settings as data until it is rendered")
    func phrase() {
        let hint: Phrase = "raise the limit with \(setting: .maxSide) only if you trust this file"
        #expect(hint.parts.contains(.setting(.maxSide)))
        #expect(hint.description == "raise the limit with maxSide only if you trust this file")
        #expect(hint.rendered(naming: flag) == "raise the limit with --max-side only if you trust this file")
    }
}
