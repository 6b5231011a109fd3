import MossaicCore
import Testing
@testable import mossaicfs

@Suite struct ProgressBarTests {
    @Test func countsShowABarTheRateAndTheTimeLeft() {
        let line = ProgressBar.line(ProgressEvent("verifying objects", done: 50, total: 200), elapsed: 10)
        #expect(line == "verifying objects  [#####               ]  50/200  5.0/s  ETA 0:30")
    }

    @Test func bytesShowHumanUnitsPerSecond() {
        let line = ProgressBar.line(ProgressEvent("warming up", done: 30 << 20, total: 120 << 20, unit: .bytes), elapsed: 3)
        #expect(line == "warming up  [#####               ]  30.0 MiB/120.0 MiB  10.0 MiB/s  ETA 0:09")
    }

    /// In the first second a rate is mostly noise: no rate, no ETA yet.
    @Test func noGuessBeforeASecondOrBeforeProgress() {
        #expect(ProgressBar.line(ProgressEvent("deleting objects", done: 10, total: 100), elapsed: 0.5)
                == "deleting objects  [##                  ]  10/100")
        #expect(ProgressBar.line(ProgressEvent("deleting objects", done: 0, total: 100), elapsed: 30)
                == "deleting objects  [                    ]  0/100")
    }

    @Test func anUnknownTotalShowsTheCountAndTheRate() {
        #expect(ProgressBar.line(ProgressEvent("listing objects", done: 0, total: 0), elapsed: 0) == "listing objects...  0")
        #expect(ProgressBar.line(ProgressEvent("listing objects", done: 2000, total: 0), elapsed: 4) == "listing objects  2000  500/s")
    }

    @Test func aDoneTaskHasNoETA() {
        #expect(ProgressBar.line(ProgressEvent("x", done: 4, total: 4), elapsed: 2) == "x  [####################]  4/4  2.0/s")
    }

    /// A line that wraps leaves a copy behind at every redraw: parts are dropped to fit.
    @Test func theLineFitsTheTerminal() {
        let e = ProgressEvent("uploading staged chunks", done: 1 << 30, total: 3 << 30, unit: .bytes)
        for columns in [20, 40, 60, 80] {
            #expect(ProgressBar.line(e, elapsed: 100, columns: columns).count < columns)
        }
        #expect(ProgressBar.line(e, elapsed: 100, columns: 70) == "uploading staged chunks  1.0 GiB/3.0 GiB  10.2 MiB/s  ETA 3:20")
        #expect(ProgressBar.line(e, elapsed: 100, columns: 60) == "uploading staged chunks  1.0 GiB/3.0 GiB  10.2 MiB/s")
    }

    @Test func durations() {
        #expect(ProgressBar.duration(0.2) == "0:01")
        #expect(ProgressBar.duration(59) == "0:59")
        #expect(ProgressBar.duration(61) == "1:01")
        #expect(ProgressBar.duration(3600 + 62) == "1:01:02")
        #expect(ProgressBar.duration(1e9) == ">99h")
        #expect(ProgressBar.duration(.infinity) == ">99h")
    }

    @Test func eventsRoundTripAsLines() {
        let e = ProgressEvent("restoring\tmetadata", done: 5, total: 9, unit: .bytes)
        let parsed = ProgressEvent(line: e.line.dropLast())
        #expect(parsed == ProgressEvent("restoring metadata", done: 5, total: 9, unit: .bytes))
        #expect(ProgressEvent(line: "READY") == nil)
        #expect(ProgressEvent(line: "PROGRESS\tx\t1\t2\tparsecs") == nil)
    }

    /// Not a terminal: nothing, not even a cleared line.
    @Test func silentOffATerminal() {
        let bar = ProgressBar(terminal: false)
        bar.show("x", 1, 2)
        bar.finish()
    }
}
