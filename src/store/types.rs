//! The two words every table uses: which org, and which way a record moves.

use std::fmt;
use std::str::FromStr;

/// One of the two orgs. Stored as `'a'` / `'b'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Org {
    A,
    B,
}

impl Org {
    pub fn as_str(self) -> &'static str {
        match self {
            Org::A => "a",
            Org::B => "b",
        }
    }

    /// The other org.
    pub fn other(self) -> Org {
        match self {
            Org::A => Org::B,
            Org::B => Org::A,
        }
    }
}

impl fmt::Display for Org {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Org {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "a" | "A" => Ok(Org::A),
            "b" | "B" => Ok(Org::B),
            other => Err(format!("unknown org {other:?} (expected a or b)")),
        }
    }
}

/// The way records move in a pass. Stored as `'a_to_b'` / `'b_to_a'`, the word used in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    AToB,
    BToA,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::AToB, Direction::BToA];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::AToB => "a_to_b",
            Direction::BToA => "b_to_a",
        }
    }

    /// The org records are read from.
    pub fn source(self) -> Org {
        match self {
            Direction::AToB => Org::A,
            Direction::BToA => Org::B,
        }
    }

    /// The org records are written to.
    pub fn target(self) -> Org {
        self.source().other()
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "a_to_b" => Ok(Direction::AToB),
            "b_to_a" => Ok(Direction::BToA),
            other => Err(format!(
                "unknown direction {other:?} (expected a_to_b or b_to_a)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for d in Direction::BOTH {
            assert_eq!(d.as_str().parse::<Direction>(), Ok(d));
            assert_eq!(d.target(), d.source().other());
        }
        assert_eq!("a".parse::<Org>(), Ok(Org::A));
        assert!("c".parse::<Org>().is_err());
    }
}
