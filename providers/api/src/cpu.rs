//! CPU quantities in millicores: what a host gets and what a machine offers.
//!
//! Operators write cpu as a number of cores (`2`, `0.5`, `1.25`) or as a millicore string
//! (`"500m"`). Inside kloud a quantity is a whole number of millicores ([`Cpu`]), so sums and
//! comparisons are exact. On the wire (plan JSON, HostDB records) it is a JSON number of cores:
//! a whole cpu serialises exactly as the integer it always was (`2`), a fraction as a decimal
//! (`0.5`).
//!
//! [`Overcommit`] is the factor by which a machine's cpu may be sold more than once (OpenVZ
//! style), kept in thousandths for the same reason.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Millicores per core.
pub const MILLIS_PER_CORE: u32 = 1000;

/// Why a cpu quantity could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuError {
    #[error("`{0}` is not a number of cores or of millicores")]
    Syntax(String),
    #[error("`{0}` is negative")]
    Negative(String),
    #[error("`{0}` is finer than one millicore (0.001)")]
    TooFine(String),
    #[error("`{0}` is too large")]
    Overflow(String),
}

/// A cpu quantity in millicores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cpu(u32);

impl Cpu {
    pub const ZERO: Cpu = Cpu(0);

    /// `cores` whole cores (saturating at the largest quantity).
    pub const fn from_cores(cores: u32) -> Cpu {
        Cpu(cores.saturating_mul(MILLIS_PER_CORE))
    }

    pub const fn from_millis(millis: u32) -> Cpu {
        Cpu(millis)
    }

    pub const fn millis(self) -> u32 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Whether this is a whole number of cores.
    pub const fn is_whole(self) -> bool {
        self.0.is_multiple_of(MILLIS_PER_CORE)
    }

    /// Whole cores, rounded up (`0.5` → 1): what an interface that counts cores gets.
    pub const fn ceil_cores(self) -> u32 {
        self.0.div_ceil(MILLIS_PER_CORE)
    }

    pub const fn saturating_add(self, other: Cpu) -> Cpu {
        Cpu(self.0.saturating_add(other.0))
    }

    pub const fn saturating_sub(self, other: Cpu) -> Cpu {
        Cpu(self.0.saturating_sub(other.0))
    }

    pub fn checked_add(self, other: Cpu) -> Option<Cpu> {
        self.0.checked_add(other.0).map(Cpu)
    }

    /// Read `"0.5"`, `"2"`, `" 1.25 "` (cores) or `"500m"` (millicores).
    pub fn parse(text: &str) -> Result<Cpu, CpuError> {
        let t = text.trim();
        if t.starts_with('-') {
            return Err(CpuError::Negative(text.to_string()));
        }
        let millis = match t.strip_suffix('m') {
            Some(m) => decimal_millis(m.trim_end(), 1),
            None => decimal_millis(t, u64::from(MILLIS_PER_CORE)),
        }
        .map_err(|e| e.with(text))?;
        u32::try_from(millis)
            .map(Cpu)
            .map_err(|_| CpuError::Overflow(text.to_string()))
    }

    /// A whole number of cores, as JSON and HCL integers are read.
    pub fn from_whole(cores: u64) -> Result<Cpu, CpuError> {
        u32::try_from(cores)
            .ok()
            .and_then(|c| c.checked_mul(MILLIS_PER_CORE))
            .map(Cpu)
            .ok_or_else(|| CpuError::Overflow(cores.to_string()))
    }

    /// A JSON or HCL number of cores. Numbers are read through their shortest decimal form, so
    /// `0.1` is exactly 100 millicores.
    pub fn from_f64(cores: f64) -> Result<Cpu, CpuError> {
        let text = format!("{cores}");
        if !cores.is_finite() {
            return Err(CpuError::Syntax(text));
        }
        Cpu::parse(&text)
    }
}

/// Why a decimal could not be read (the caller names the text).
enum DecimalError {
    Syntax,
    TooFine,
    Overflow,
}

impl DecimalError {
    fn with(self, text: &str) -> CpuError {
        let t = text.to_string();
        match self {
            DecimalError::Syntax => CpuError::Syntax(t),
            DecimalError::TooFine => CpuError::TooFine(t),
            DecimalError::Overflow => CpuError::Overflow(t),
        }
    }
}

/// `t` (digits, at most one `.`) times `scale`, which must come out whole.
fn decimal_millis(t: &str, scale: u64) -> Result<u64, DecimalError> {
    let (int_part, frac_part) = t.split_once('.').unwrap_or((t, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !digits_ok(int_part)
        || !digits_ok(frac_part)
    {
        return Err(DecimalError::Syntax);
    }
    let frac_trimmed = frac_part.trim_end_matches('0');
    if frac_trimmed.len() > 18 {
        return Err(DecimalError::TooFine);
    }
    let int: u64 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().map_err(|_| DecimalError::Overflow)?
    };
    let denom = 10u128.pow(frac_trimmed.len() as u32);
    let frac: u128 = if frac_trimmed.is_empty() {
        0
    } else {
        frac_trimmed.parse().map_err(|_| DecimalError::Syntax)?
    };
    let scaled_frac = frac * u128::from(scale);
    if !scaled_frac.is_multiple_of(denom) {
        return Err(DecimalError::TooFine);
    }
    let total = u128::from(int) * u128::from(scale) + scaled_frac / denom;
    u64::try_from(total).map_err(|_| DecimalError::Overflow)
}

/// `n` thousandths as the shortest decimal: `2000` → `2`, `500` → `0.5`, `1250` → `1.25`.
fn write_thousandths(f: &mut fmt::Formatter<'_>, n: u32) -> fmt::Result {
    let (int, frac) = (n / 1000, n % 1000);
    if frac == 0 {
        write!(f, "{int}")
    } else {
        let digits = format!("{frac:03}");
        write!(f, "{int}.{}", digits.trim_end_matches('0'))
    }
}

impl fmt::Display for Cpu {
    /// Cores: `2`, `0.5`, `1.25`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_thousandths(f, self.0)
    }
}

impl Serialize for Cpu {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_whole() {
            s.serialize_u32(self.0 / MILLIS_PER_CORE)
        } else {
            s.serialize_f64(f64::from(self.0) / f64::from(MILLIS_PER_CORE))
        }
    }
}

impl<'de> Deserialize<'de> for Cpu {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cpu, D::Error> {
        d.deserialize_any(CpuVisitor)
    }
}

struct CpuVisitor;

impl serde::de::Visitor<'_> for CpuVisitor {
    type Value = Cpu;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of cores (2, 0.5) or of millicores (\"500m\")")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Cpu, E> {
        Cpu::from_whole(v).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Cpu, E> {
        match u64::try_from(v) {
            Ok(u) => self.visit_u64(u),
            Err(_) => Err(E::custom(CpuError::Negative(v.to_string()))),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Cpu, E> {
        Cpu::from_f64(v).map_err(E::custom)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Cpu, E> {
        Cpu::parse(v).map_err(E::custom)
    }
}

impl std::iter::Sum for Cpu {
    /// Saturating, like [`Cpu::saturating_add`].
    fn sum<I: Iterator<Item = Cpu>>(iter: I) -> Cpu {
        iter.fold(Cpu::ZERO, Cpu::saturating_add)
    }
}

/// Why an overcommit factor could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OvercommitError {
    #[error("`{0}` is not a number")]
    Syntax(String),
    #[error("an overcommit factor must be at least 1, found `{0}`")]
    BelowOne(String),
    #[error("`{0}` is finer than 0.001")]
    TooFine(String),
    #[error("`{0}` is too large")]
    Overflow(String),
}

/// How many times a machine's cpu may be handed out: `1` (the default) to any factor, with
/// three decimals (`1.5`). Kept in thousandths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Overcommit(u32);

impl Default for Overcommit {
    fn default() -> Self {
        Overcommit::NONE
    }
}

impl Overcommit {
    /// No overcommit: a factor of 1.
    pub const NONE: Overcommit = Overcommit(1000);

    pub const fn thousandths(self) -> u32 {
        self.0
    }

    pub const fn is_none(self) -> bool {
        self.0 == 1000
    }

    /// Read a factor written as a number (`2`, `1.5`).
    pub fn from_f64(factor: f64) -> Result<Overcommit, OvercommitError> {
        let text = format!("{factor}");
        if !factor.is_finite() {
            return Err(OvercommitError::Syntax(text));
        }
        if factor < 1.0 {
            return Err(OvercommitError::BelowOne(text));
        }
        let n = decimal_millis(&text, 1000).map_err(|e| match e {
            DecimalError::Syntax => OvercommitError::Syntax(text.clone()),
            DecimalError::TooFine => OvercommitError::TooFine(text.clone()),
            DecimalError::Overflow => OvercommitError::Overflow(text.clone()),
        })?;
        let n = u32::try_from(n).map_err(|_| OvercommitError::Overflow(text.clone()))?;
        Ok(Overcommit(n))
    }

    /// The cpu that may be scheduled on a machine of `cpu` (rounded down to a millicore).
    pub fn apply(self, cpu: Cpu) -> Cpu {
        let m = u64::from(cpu.0) * u64::from(self.0) / 1000;
        Cpu(u32::try_from(m).unwrap_or(u32::MAX))
    }
}

impl fmt::Display for Overcommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_thousandths(f, self.0)
    }
}

impl Serialize for Overcommit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(1000) {
            s.serialize_u32(self.0 / 1000)
        } else {
            s.serialize_f64(f64::from(self.0) / 1000.0)
        }
    }
}

impl<'de> Deserialize<'de> for Overcommit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Overcommit, D::Error> {
        let v = f64::deserialize(d)?;
        Overcommit::from_f64(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_and_millicores_parse_exactly() {
        assert_eq!(Cpu::parse("2"), Ok(Cpu::from_cores(2)));
        assert_eq!(Cpu::parse("0.5"), Ok(Cpu::from_millis(500)));
        assert_eq!(Cpu::parse(" 1.25 "), Ok(Cpu::from_millis(1250)));
        assert_eq!(Cpu::parse("500m"), Ok(Cpu::from_millis(500)));
        assert_eq!(Cpu::parse("0.001"), Ok(Cpu::from_millis(1)));
        assert_eq!(Cpu::parse("1.500000"), Ok(Cpu::from_millis(1500)));
        assert_eq!(Cpu::parse("0"), Ok(Cpu::ZERO));
        assert_eq!(Cpu::from_f64(0.1), Ok(Cpu::from_millis(100)));
        assert_eq!(Cpu::from_f64(3.0), Ok(Cpu::from_cores(3)));
    }

    #[test]
    fn bad_quantities_are_refused() {
        assert!(matches!(Cpu::parse("0.0005"), Err(CpuError::TooFine(_))));
        assert!(matches!(Cpu::parse("0.5m"), Err(CpuError::TooFine(_))));
        assert!(matches!(Cpu::parse("-1"), Err(CpuError::Negative(_))));
        assert!(matches!(Cpu::parse("two"), Err(CpuError::Syntax(_))));
        assert!(matches!(Cpu::parse("m"), Err(CpuError::Syntax(_))));
        assert!(matches!(Cpu::parse("1.2.3"), Err(CpuError::Syntax(_))));
        assert!(matches!(Cpu::parse("5000000"), Err(CpuError::Overflow(_))));
        assert!(matches!(Cpu::from_f64(f64::NAN), Err(CpuError::Syntax(_))));
    }

    #[test]
    fn display_and_json_keep_whole_cpus_as_integers() {
        assert_eq!(Cpu::from_cores(2).to_string(), "2");
        assert_eq!(Cpu::from_millis(500).to_string(), "0.5");
        assert_eq!(Cpu::from_millis(1250).to_string(), "1.25");
        assert_eq!(Cpu::from_millis(1).to_string(), "0.001");
        let json = serde_json::to_string(&[Cpu::from_cores(2), Cpu::from_millis(500)]).unwrap();
        assert_eq!(json, "[2,0.5]");
        let back: Vec<Cpu> = serde_json::from_str("[2,0.5,\"250m\",1.25]").unwrap();
        assert_eq!(back, [2000, 500, 250, 1250].map(Cpu::from_millis).to_vec());
        assert!(serde_json::from_str::<Cpu>("-1").is_err());
        assert!(serde_json::from_str::<Cpu>("0.0001").is_err());
    }

    #[test]
    fn overcommit_scales_cpu_down_to_a_millicore() {
        let o = Overcommit::from_f64(1.5).unwrap();
        assert_eq!(o.apply(Cpu::from_cores(8)), Cpu::from_cores(12));
        assert_eq!(o.to_string(), "1.5");
        assert_eq!(
            Overcommit::NONE.apply(Cpu::from_millis(1234)),
            Cpu::from_millis(1234)
        );
        assert!(matches!(
            Overcommit::from_f64(0.5),
            Err(OvercommitError::BelowOne(_))
        ));
        assert_eq!(
            serde_json::to_string(&Overcommit::from_f64(2.0).unwrap()).unwrap(),
            "2"
        );
        assert_eq!(serde_json::to_string(&o).unwrap(), "1.5");
    }
}
