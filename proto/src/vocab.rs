//! The contract's enums ↔ the vocabulary of `scanscope-common`. A `scanscope.v1.Kind` is the
//! kernel's kind plus one (0 is `UNSPECIFIED`); a `LostStage` has the same number in both.
use scanscope_common::{Kind, LostStage, Source};

use crate::v1;

impl From<Kind> for v1::Kind {
    fn from(k: Kind) -> v1::Kind {
        v1::Kind::try_from(k as i32 + 1).unwrap_or(v1::Kind::Unspecified)
    }
}

/// The kind of a `scanscope.v1.Kind` number (`None` for `UNSPECIFIED` or an unknown number).
pub fn kind(n: i32) -> Option<Kind> {
    u8::try_from(n.checked_sub(1)?).ok().and_then(Kind::from_u8)
}

impl From<LostStage> for v1::LostStage {
    fn from(s: LostStage) -> v1::LostStage {
        v1::LostStage::try_from(s as i32).unwrap_or(v1::LostStage::Unspecified)
    }
}

/// The stage of a `scanscope.v1.LostStage` number.
pub fn lost_stage(n: i32) -> Option<LostStage> {
    LostStage::from_number(n)
}

/// The source of a `scanscope.v1.Batch`'s `source` number (an unknown number: a sensor's, as
/// validation refuses it first).
pub fn source(n: i32) -> Source {
    match v1::Source::try_from(n) {
        Ok(v1::Source::Netflow) => Source::Netflow,
        _ => Source::Xdp,
    }
}

impl From<Source> for v1::Source {
    fn from(s: Source) -> v1::Source {
        match s {
            Source::Xdp => v1::Source::Xdp,
            Source::Netflow => v1::Source::Netflow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_stages_line_up_with_the_contract() {
        for k in Kind::ALL {
            let p = v1::Kind::from(k);
            assert_ne!(p, v1::Kind::Unspecified);
            assert_eq!(
                p.as_str_name()
                    .trim_start_matches("KIND_")
                    .to_ascii_lowercase(),
                k.name()
            );
            assert_eq!(kind(p as i32), Some(k));
        }
        assert_eq!(kind(0), None);
        assert_eq!(kind(99), None);
        for s in LostStage::ALL {
            let p = v1::LostStage::from(s);
            assert_eq!(
                p.as_str_name()
                    .trim_start_matches("LOST_STAGE_")
                    .to_ascii_lowercase(),
                s.name()
            );
            assert_eq!(lost_stage(p as i32), Some(s));
        }
        // Every contract value but UNSPECIFIED has a common counterpart.
        for n in 1..=15 {
            assert!(kind(n).is_some(), "kind {n}");
        }
        assert!(v1::Kind::try_from(16).is_err());
        assert!(v1::LostStage::try_from(12).is_err());
    }
}
