//! How durations and byte sizes are written in `alisay.yaml`, and how `alisay check` prints
//! them back: always as exact, human strings (`90s`, `2h`, `730d`, `64 KiB`), never as a
//! rounded approximation, so that the printed effective config loads to the same values.
//!
//! Used through `#[serde(with = "...")]` on the schema fields; the `*_schema` functions give
//! the JSON Schema (`schemars`) of each unit for editors.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// Durations: read with `humantime` (`5s`, `10m`, `2h`, `1h 30m`, `250ms`), written in the
/// largest single unit that is exact (`90s`, not `1m 30s`; `730d`, not humantime's years).
pub mod duration {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    /// Writes `d` as an exact human string (see [`format`]).
    ///
    /// # Errors
    /// Only those of the serializer.
    pub fn serialize<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format(*d))
    }

    /// Reads a `humantime` string (`5s`, `2h`, `1h 30m`).
    ///
    /// # Errors
    /// When the text is not a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        humantime_serde::deserialize(deserializer)
    }

    /// The exact human form of `d`: one unit (`d`, `h`, `m`, `s`, `ms`) when it divides `d`,
    /// else `humantime`'s multi-unit form (`1s 500us`). `0s` for zero.
    pub fn format(d: Duration) -> String {
        const UNITS: [(u128, &str); 5] = [
            (86_400_000_000_000, "d"),
            (3_600_000_000_000, "h"),
            (60_000_000_000, "m"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
        ];
        let nanos = d.as_nanos();
        if nanos == 0 {
            return "0s".to_owned();
        }
        for (size, unit) in UNITS {
            if nanos.is_multiple_of(size) {
                return format!("{}{unit}", nanos / size);
            }
        }
        humantime::format_duration(d).to_string()
    }
}

/// Byte sizes: read as an integer (bytes) or a `bytesize` string (`64KiB`, `1 MiB`, `32768`),
/// written exactly (`64 KiB`, `1 MiB`, `1500 B`), never rounded.
pub mod bytes {
    use bytesize::ByteSize;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `size` as an exact human string (see [`format`]).
    ///
    /// # Errors
    /// Only those of the serializer.
    pub fn serialize<S: Serializer>(size: &ByteSize, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format(*size))
    }

    /// Reads an integer number of bytes or a `bytesize` string.
    ///
    /// # Errors
    /// When the value is neither.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ByteSize, D::Error> {
        ByteSize::deserialize(deserializer)
    }

    /// `N GiB`, `N MiB` or `N KiB` when exact, else `N B`.
    pub fn format(size: ByteSize) -> String {
        let n = size.as_u64();
        for (unit, name) in [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
            if n != 0 && n.is_multiple_of(unit) {
                return format!("{} {name}", n / unit);
            }
        }
        format!("{n} B")
    }
}

/// JSON Schema of a duration field: a `humantime` string.
pub fn duration_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": r"^\s*[0-9]+\s*[a-zA-Zµ]+(\s*[0-9]+\s*[a-zA-Zµ]+)*\s*$",
        "description": "A duration such as `5s`, `10m`, `2h` or `1h 30m` (humantime syntax).",
        "examples": ["5s", "10m", "2h"]
    })
}

/// JSON Schema of a byte-size field: an integer (bytes) or a string such as `64KiB`.
pub fn bytes_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [
            { "type": "integer", "minimum": 0 },
            { "type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*[a-zA-Z]*\s*$" }
        ],
        "description": "A size in bytes: an integer, or a string such as `64KiB` or `1 MiB`.",
        "examples": ["64 KiB", 65536]
    })
}

impl JsonSchema for super::IpRange {
    fn schema_name() -> Cow<'static, str> {
        "IpRange".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "An IP address, a CIDR block (`10.0.0.0/8`, `fc00::/7`) or an \
                inclusive `a-b` range of one family.",
            "examples": ["10.0.0.0/8", "192.0.2.10-192.0.2.20", "2001:db8::/32"]
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytesize::ByteSize;

    use super::{bytes, duration};

    #[test]
    fn durations_print_in_one_exact_unit() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(600), "10m"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_secs(63_072_000), "730d"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(1_000_500), "1s 500us"),
        ];
        for (d, text) in cases {
            assert_eq!(duration::format(d), text);
            assert_eq!(humantime::parse_duration(text).unwrap(), d, "{text}");
        }
    }

    #[test]
    fn sizes_print_exactly_and_parse_back() {
        let cases = [
            (ByteSize::kib(64), "64 KiB"),
            (ByteSize::mib(1), "1 MiB"),
            (ByteSize::gib(2), "2 GiB"),
            (ByteSize::b(1500), "1500 B"),
            (ByteSize::b(0), "0 B"),
        ];
        for (size, text) in cases {
            assert_eq!(bytes::format(size), text);
            assert_eq!(text.parse::<ByteSize>().unwrap(), size, "{text}");
        }
    }
}
