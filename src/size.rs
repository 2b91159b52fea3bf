//! Binary sizes as operators write them: `"512MiB"`, `"8GiB"`, `"2TiB"`.
//!
//! A plain number is taken in the unit of the attribute (MiB for memory, GiB for disk), so that
//! `memory = 2048` and `memory = "2GiB"` mean the same. Sizes that do not land on a whole unit
//! (`"1.5MiB"` of disk) are rejected rather than silently rounded.

use std::fmt;

/// The unit an attribute is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    MiB,
    GiB,
}

impl Unit {
    fn mib(self) -> u128 {
        match self {
            Unit::MiB => 1,
            Unit::GiB => 1024,
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unit::MiB => "MiB",
            Unit::GiB => "GiB",
        })
    }
}

/// Why a size could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("`{0}` is not a size")]
    Syntax(String),
    #[error("unknown size unit `{0}`")]
    UnknownUnit(String),
    #[error("`{text}` is not a whole number of {unit}")]
    Fraction { text: String, unit: Unit },
    #[error("`{0}` is too large")]
    Overflow(String),
    #[error("a size cannot be negative")]
    Negative,
}

const UNITS: &[(&str, u128)] = &[
    // In bytes; a size must come out as a whole number of the target unit.
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("PiB", 1 << 50),
];

/// Parse `text` (`"8GiB"`, `"512 MiB"`, `"1.5TiB"`) into a whole number of `unit`.
pub fn parse(text: &str, unit: Unit) -> Result<u64, SizeError> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(SizeError::Negative);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let suffix = suffix.trim();
    if num.is_empty() {
        return Err(SizeError::Syntax(text.to_string()));
    }
    let unit_bytes = unit.mib() << 20;
    let bytes_per = if suffix.is_empty() {
        unit_bytes
    } else {
        UNITS
            .iter()
            .find(|(name, _)| *name == suffix)
            .map(|(_, b)| *b)
            .ok_or_else(|| SizeError::UnknownUnit(suffix.to_string()))?
    };
    // Fixed point with up to 6 decimals keeps "1.5GiB" exact without floating point.
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if frac_part.len() > 6 || int_part.is_empty() && frac_part.is_empty() {
        return Err(SizeError::Syntax(text.to_string()));
    }
    let scale = 10u128.pow(frac_part.len() as u32);
    let digits = format!("{int_part}{frac_part}");
    let scaled: u128 = digits
        .parse()
        .map_err(|_| SizeError::Syntax(text.to_string()))?;
    let bytes_scaled = scaled
        .checked_mul(bytes_per)
        .ok_or_else(|| SizeError::Overflow(text.to_string()))?;
    let denom = scale * unit_bytes;
    if bytes_scaled % denom != 0 {
        return Err(SizeError::Fraction {
            text: text.to_string(),
            unit,
        });
    }
    u64::try_from(bytes_scaled / denom).map_err(|_| SizeError::Overflow(text.to_string()))
}

/// Render a size in MiB the way people write it: `"8GiB"`, `"512MiB"`.
pub fn format_mib(mib: u64) -> String {
    if mib != 0 && mib.is_multiple_of(1024 * 1024) {
        format!("{}TiB", mib / (1024 * 1024))
    } else if mib != 0 && mib.is_multiple_of(1024) {
        format!("{}GiB", mib / 1024)
    } else {
        format!("{mib}MiB")
    }
}

/// Render a size in GiB: `"40GiB"`, `"2TiB"`.
pub fn format_gib(gib: u64) -> String {
    if gib != 0 && gib.is_multiple_of(1024) {
        format!("{}TiB", gib / 1024)
    } else {
        format!("{gib}GiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_convert_exactly() {
        assert_eq!(parse("8GiB", Unit::MiB), Ok(8192));
        assert_eq!(parse("512MiB", Unit::MiB), Ok(512));
        assert_eq!(parse("2TiB", Unit::GiB), Ok(2048));
        assert_eq!(parse("1.5GiB", Unit::MiB), Ok(1536));
        assert_eq!(parse("40", Unit::GiB), Ok(40));
        assert_eq!(parse(" 4 GiB ", Unit::MiB), Ok(4096));
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert_eq!(
            parse("8GB", Unit::MiB),
            Err(SizeError::UnknownUnit("GB".into()))
        );
        assert!(matches!(
            parse("512MiB", Unit::GiB),
            Err(SizeError::Fraction { .. })
        ));
        assert_eq!(parse("-1GiB", Unit::MiB), Err(SizeError::Negative));
        assert!(matches!(parse("GiB", Unit::MiB), Err(SizeError::Syntax(_))));
        assert!(matches!(
            parse("99999999999999PiB", Unit::MiB),
            Err(SizeError::Overflow(_))
        ));
    }

    #[test]
    fn formatting_round_trips() {
        for mib in [512, 1024, 8192, 1536, 1 << 20] {
            assert_eq!(parse(&format_mib(mib), Unit::MiB), Ok(mib));
        }
        assert_eq!(format_gib(2048), "2TiB");
    }
}
