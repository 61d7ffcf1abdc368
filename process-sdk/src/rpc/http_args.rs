//! The arguments of an `#[app]` call as the generated code deserializes
//! them: a JSON value (a message's call, an HTTP request with a body), or
//! the path parameters and query of an HTTP request without a body, read
//! from the request's pairs as they are, without building a JSON map
//! first (a map node and a copy of every name per request, in a guest).
//!
//! Both give the same arguments and the same errors: a bodiless request's
//! pairs read as the object the runtime built before (each name once, a
//! path parameter over a query one of the same name, a name given twice
//! in one of them keeping its last value), and each value as a JSON
//! string would (`pairs_read_as_the_json_object_did`).

use std::borrow::Cow;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// What [`super::App::call`] gets.
pub enum Args<'a> {
    /// A JSON value: `null` reads as an empty object.
    Json(Value),
    /// A bodiless HTTP request's path parameters and query.
    Pairs(Pairs<'a>),
}

impl From<Value> for Args<'_> {
    fn from(value: Value) -> Self {
        Args::Json(value)
    }
}

/// Name/value pairs of a request, as the node sent them.
type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

/// The pairs of a bodiless HTTP request, read as one JSON object of
/// strings: a path parameter wins over a query pair of the same name, and
/// within each the last of a repeated name wins.
#[derive(Clone, Copy)]
pub struct Pairs<'a> {
    params: &'a [Pair<'a>],
    query: &'a [Pair<'a>],
}

/// Pairs read as they are at most; a request with more (a long query)
/// is read into a JSON object, so picking each name stays cheap.
pub const MAX_PAIRS: usize = 8;

impl<'a> Pairs<'a> {
    /// The pairs of a request, if there are at most [`MAX_PAIRS`].
    pub fn new(params: &'a [Pair<'a>], query: &'a [Pair<'a>]) -> Option<Self> {
        (params.len() + query.len() <= MAX_PAIRS).then_some(Pairs { params, query })
    }

    /// The pair at `index` of the reading order: the parameters from the
    /// last, then the query from the last. The first pair of a name in
    /// that order is the one that counts.
    fn at(&self, index: usize) -> Option<&'a Pair<'a>> {
        let (params, query) = (self.params, self.query);
        match index.checked_sub(params.len()) {
            None => params.get(params.len() - 1 - index),
            Some(i) => query.len().checked_sub(i + 1).and_then(|j| query.get(j)),
        }
    }

    /// The pair that counts for the least name after `after`: names come
    /// in the order of the JSON object's keys, so a call with two wrong
    /// names is refused for the same one.
    fn next_after(&self, after: Option<&str>) -> Option<&'a Pair<'a>> {
        let mut best: Option<&'a Pair<'a>> = None;
        for index in 0..self.params.len() + self.query.len() {
            let Some(pair) = self.at(index) else { continue };
            let name = pair.0.as_ref();
            let past = after.is_none_or(|after| name > after);
            if past && best.is_none_or(|(least, _)| name < least.as_ref()) {
                best = Some(pair);
            }
        }
        best
    }

    /// The object the runtime built before, for the tests.
    #[cfg(test)]
    pub(crate) fn to_map(self) -> Map<String, Value> {
        let mut map = Map::new();
        for (name, value) in self.params.iter().rev().chain(self.query.iter().rev()) {
            if !map.contains_key(name.as_ref()) {
                map.insert(name.to_string(), Value::String(value.to_string()));
            }
        }
        map
    }
}

impl Args<'_> {
    /// `T` from these arguments, with serde_json's errors.
    pub(crate) fn deserialize<T: de::DeserializeOwned>(self) -> Result<T, serde_json::Error> {
        match self {
            Args::Json(Value::Null) => serde_json::from_value(Value::Object(Map::new())),
            Args::Json(value) => serde_json::from_value(value),
            Args::Pairs(pairs) => T::deserialize(PairsReader { pairs }),
        }
    }
}

/// [`Pairs`] as a serde map, its names in the order of a JSON object's keys.
struct PairsReader<'a> {
    pairs: Pairs<'a>,
}

impl<'de> de::Deserializer<'de> for PairsReader<'_> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(PairsAccess {
            pairs: self.pairs,
            last: None,
            value: None,
        })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct PairsAccess<'a> {
    pairs: Pairs<'a>,
    /// The name last given.
    last: Option<&'a str>,
    /// Its value, until it is read.
    value: Option<&'a str>,
}

impl<'de> MapAccess<'de> for PairsAccess<'_> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((name, value)) = self.pairs.next_after(self.last) else {
            return Ok(None);
        };
        self.last = Some(name.as_ref());
        self.value = Some(value.as_ref());
        let name = IntoDeserializer::<serde_json::Error>::into_deserializer(name.as_ref());
        seed.deserialize(name).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value.take() {
            Some(text) => seed.deserialize(Text(text)),
            None => Err(de::Error::custom("a value asked before its name")),
        }
    }
}

/// One value, read as `serde_json` reads a JSON string: text for
/// anything, `Some(text)` for an option, the inner value for a newtype
/// struct, a unit variant for an enum.
struct Text<'a>(&'a str);

impl<'de> de::Deserializer<'de> for Text<'_> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_str(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_enum(
            IntoDeserializer::<serde_json::Error>::into_deserializer(self.0),
            name,
            variants,
            visitor,
        )
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    enum Mode {
        Fast,
        Slow,
        With(u8),
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Id(String);

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Call {
        key: String,
        page: Option<String>,
        id: Option<Id>,
        mode: Option<Mode>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Numbers {
        n: u32,
        flag: Option<bool>,
    }

    fn pairs(list: &[(&'static str, &'static str)]) -> Vec<Pair<'static>> {
        list.iter()
            .map(|(n, v)| (Cow::Borrowed(*n), Cow::Borrowed(*v)))
            .collect()
    }

    /// The same outcome, value or error text, both ways.
    fn same<T: de::DeserializeOwned + PartialEq + std::fmt::Debug>(p: Pairs<'_>) {
        let quick = Args::Pairs(p).deserialize::<T>().map_err(|e| e.to_string());
        let json = Args::Json(Value::Object(p.to_map()))
            .deserialize::<T>()
            .map_err(|e| e.to_string());
        assert_eq!(quick, json);
    }

    #[test]
    fn pairs_read_as_the_json_object_did() {
        type Case = (
            &'static [(&'static str, &'static str)],
            &'static [(&'static str, &'static str)],
        );
        let cases: &[Case] = &[
            (&[("key", "a")], &[]),
            (&[("key", "a")], &[("page", "2"), ("page", "3")]),
            (&[("key", "a"), ("key", "b")], &[("key", "q")]),
            (&[], &[("key", "from the query")]),
            (&[], &[]),
            (&[("key", "a")], &[("other", "x")]),
            (&[("key", "a")], &[("id", "7"), ("mode", "Slow")]),
            (&[("key", "a")], &[("mode", "Sideways")]),
            (&[("key", "a")], &[("mode", "With")]),
            (&[("key", "é\"\\")], &[("page", "")]),
        ];
        for (params, query) in cases {
            let (params, query) = (pairs(params), pairs(query));
            let p = Pairs::new(&params, &query).unwrap();
            same::<Call>(p);
            same::<Numbers>(p);
            same::<BTreeMap<String, String>>(p);
            same::<Value>(p);
        }
        let (params, query) = (pairs(&[("n", "5")]), pairs(&[("flag", "true")]));
        same::<Numbers>(Pairs::new(&params, &query).unwrap());
        let (params, query) = (
            pairs(&[("key", "a")]),
            pairs(&[("id", "7"), ("mode", "Fast")]),
        );
        let call = Args::Pairs(Pairs::new(&params, &query).unwrap())
            .deserialize::<Call>()
            .unwrap();
        assert_eq!(call.id, Some(Id("7".into())));
        assert_eq!(call.mode, Some(Mode::Fast));
        assert_eq!(call.page, None);
    }

    /// Past [`MAX_PAIRS`], a request is left to the JSON object.
    #[test]
    fn many_pairs_are_not_read_as_they_are() {
        let query: Vec<Pair<'static>> = (0..MAX_PAIRS)
            .map(|i| (Cow::Owned(format!("q{i}")), Cow::Borrowed("v")))
            .collect();
        assert!(Pairs::new(&[], &query).is_some());
        let params = pairs(&[("key", "a")]);
        assert!(Pairs::new(&params, &query).is_none());
    }

    #[test]
    fn null_reads_as_an_empty_object() {
        let empty: BTreeMap<String, String> = Args::Json(Value::Null).deserialize().unwrap();
        assert!(empty.is_empty());
    }
}
