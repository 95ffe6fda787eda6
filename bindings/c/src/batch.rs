//! The batch argument: a JSON array of strings, read with a bound.
//!
//! A plain `Vec<String>` deserialisation would allocate for as many
//! elements as the text holds before the batch limit could be checked; this
//! reader stops at the first element past
//! [`mimi_resolver::embedded::MAX_BATCH`], so the memory a call makes the
//! library hold is bounded by the limit, not by the caller's input.

use std::fmt;

use mimi_resolver::embedded::MAX_BATCH;
use serde::de::{Deserializer, SeqAccess, Visitor};

/// The SIIs of one batch, at most [`MAX_BATCH`] of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch(Vec<String>);

impl Batch {
    /// Parses `text`, a JSON array of strings (`["alice@example.com",
    /// "+39 06 1234 5678"]`). The message of an error says where the text
    /// is wrong.
    pub fn from_json(text: &str) -> Result<Batch, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        let inputs = (&mut de)
            .deserialize_seq(BatchVisitor)
            .and_then(|b| de.end().map(|()| b))
            .map_err(|e| format!("expected a JSON array of at most {MAX_BATCH} strings: {e}"))?;
        Ok(Batch(inputs))
    }

    /// The inputs, in order.
    pub fn inputs(&self) -> &[String] {
        &self.0
    }
}

struct BatchVisitor;

impl<'de> Visitor<'de> for BatchVisitor {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an array of at most {MAX_BATCH} strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(s) = seq.next_element::<String>()? {
            if out.len() == MAX_BATCH {
                return Err(serde::de::Error::custom(format!(
                    "more than {MAX_BATCH} SIIs in one batch"
                )));
            }
            out.push(s);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_of_strings_parse_and_everything_else_is_named() {
        let b = Batch::from_json(r#"["alice@example.com", "x"]"#).unwrap();
        assert_eq!(b.inputs(), ["alice@example.com", "x"]);
        assert_eq!(Batch::from_json("[]").unwrap().inputs().len(), 0);
        for (bad, hint) in [
            ("", "EOF"),
            ("{}", "invalid type: map"),
            (r#"["a", 1]"#, "invalid type: integer"),
            (r#"["a"] x"#, "trailing characters"),
            (r#""a""#, "invalid type: string"),
        ] {
            let e = Batch::from_json(bad).unwrap_err();
            assert!(e.contains(hint), "{bad}: {e}");
        }
    }

    #[test]
    fn a_batch_over_the_limit_stops_at_the_limit() {
        let text = format!("[{}\"\"]", "\"\",".repeat(MAX_BATCH));
        let e = Batch::from_json(&text).unwrap_err();
        assert!(e.contains("more than 100000 SIIs"), "{e}");
        let text = format!("[{}]", vec!["\"\""; MAX_BATCH].join(","));
        assert_eq!(Batch::from_json(&text).unwrap().inputs().len(), MAX_BATCH);
    }
}
