//! Replays the committed fuzz corpus of the pgoutput decoder
//! (`plugins/fuzz/corpus/pgoutput/`, and the inputs that once crashed it in
//! `plugins/fuzz/regressions/pgoutput/`) through the target's body on stable:
//! an input that once crashed the decoder fails here.

// A test harness: a failure is a panic, in helpers too.
#![allow(clippy::expect_used, clippy::panic)]

include!("../../fuzz/replay.rs");

#[test]
fn pgoutput_corpus() {
    replay("pgoutput", ferry_postgres_cdc::fuzz::pgoutput);
}
