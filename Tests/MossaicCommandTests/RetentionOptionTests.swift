import MossaicCore
import Testing
@testable import mossaicfs

/// `-o meta_keep_age=` and `-o meta_keep_size=`: the duration and size-or-percentage syntaxes,
/// their ranges, and their defaults as `mount --help` shows them.
@Suite struct RetentionOptionTests {
    @Test func durationsAndSizesOrPercentagesParse() throws {
        let defaults = try MountOptions.parse([])
        #expect(defaults.metaKeepAge == 7 * 86_400 && defaults.metaKeepSize == .percent(50) && defaults.metaKeep == 30)
        let set = try MountOptions.parse(["meta_keep_age=12h,meta_keep_size=1G", "meta_keep=5"])
        #expect(set.metaKeepAge == 12 * 3600 && set.metaKeepSize == .bytes(1 << 30) && set.metaKeep == 5)
        #expect(try MountOptions.parse(["meta_keep_age=90,meta_keep_size=25%"]).metaKeepAge == 90)
        #expect(try MountOptions.parse(["meta_keep_size=25%"]).metaKeepSize == .percent(25))
        #expect(try MountOptions.parse(["meta_keep_age=0,meta_keep_size=0"]).metaKeepSize == .bytes(0))
    }

    @Test func valuesOutsideTheirSyntaxOrRangeAreRefusedNamingTheOption() {
        for bad in ["meta_keep_age=7w", "meta_keep_age=-1d", "meta_keep_age=3651d", "meta_keep_age=",
                    "meta_keep_size=50 %", "meta_keep_size=10001%", "meta_keep_size=-5%", "meta_keep_size=2Q", "meta_keep_size=%"] {
            do {
                _ = try MountOptions.parse([bad])
                Issue.record("\(bad) was accepted")
            } catch {
                let key = String(bad.prefix { $0 != "=" })
                #expect(error.description.contains("'\(key)'"), "\(error)")
            }
        }
    }

    @Test func helpShowsTheDefaultsAsTheOptionsTakeThem() {
        let table = MountOptions.helpTable(.metadata)
        #expect(table.contains("meta_keep_age=DURATION") && table.contains("(default 7d;"))
        #expect(table.contains("meta_keep_size=SIZE|N%") && table.contains("(default 50%)"))
    }
}
