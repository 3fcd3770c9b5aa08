//! Mutations of corpus seeds: byte flips, truncation, splicing two seeds, inserted tokens and
//! JSON values, and for JSON seeds, nodes replaced by random values. Positions are proptest
//! `Index`es, so a failing case shrinks to fewer mutations at earlier positions.

use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::Value;

use crate::fuzz::json;

/// One edit of a byte string.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Flips one bit.
    FlipBit { at: Index, bit: u8 },
    /// Overwrites one byte.
    SetByte { at: Index, byte: u8 },
    /// Inserts bytes (a token, random bytes or a JSON value's text).
    Insert { at: Index, bytes: Vec<u8> },
    /// Removes up to `len` bytes.
    Delete { at: Index, len: u8 },
    /// Repeats up to `len` bytes in place.
    Duplicate { at: Index, len: u8 },
    /// Cuts the input short.
    Truncate { at: Index },
    /// Inserts a slice of another seed: `len` bytes from `from` in seed `other`.
    Splice {
        other: Index,
        from: Index,
        len: u16,
        at: Index,
    },
}

/// One edit of a parsed JSON document.
#[derive(Debug, Clone)]
pub enum JsonMutation {
    /// Replaces one node (pre-order, the root included) with a value.
    Replace { node: Index, value: Value },
    /// Adds a member to one object (or an element to one array), or replaces it.
    Add {
        node: Index,
        key: String,
        value: Value,
    },
    /// Removes one member of an object (or element of an array).
    Remove { node: Index, member: Index },
}

/// Bytes that matter to JSON and TOML parsers, inserted or written over the input.
const BYTES: &[u8] =
    b"\"\\{}[],:=.#'\n\r\t \x00\x7f\xc3\xa9\xe2\x80\xae\xf0\x9f\x98\x80\xff\xfe-+eE0189";

/// A seed with a few mutations applied.
pub fn mutated(
    seeds: Arc<Vec<Vec<u8>>>,
    tokens: &'static [&'static str],
) -> impl Strategy<Value = Vec<u8>> {
    (
        any::<Index>(),
        vec(json_mutation(), 0..3),
        vec(mutation(tokens), 1..6),
    )
        .prop_map(move |(seed, json_mutations, mutations)| {
            let mut bytes = seed.get(&seeds).clone();
            if !json_mutations.is_empty()
                && let Ok(mut document) = serde_json::from_slice::<Value>(&bytes)
            {
                for json_mutation in &json_mutations {
                    apply_json(&mut document, json_mutation);
                }
                bytes = document.to_string().into_bytes();
            }
            for mutation in &mutations {
                apply(&mut bytes, mutation, &seeds);
            }
            bytes
        })
}

/// A seed with only JSON-aware mutations: still valid JSON, with odd values in odd places.
pub fn json_mutated(seeds: Arc<Vec<Value>>) -> impl Strategy<Value = Value> {
    (any::<Index>(), vec(json_mutation(), 1..5)).prop_map(move |(seed, json_mutations)| {
        let mut document = seed.get(&seeds).clone();
        for json_mutation in &json_mutations {
            apply_json(&mut document, json_mutation);
        }
        document
    })
}

/// One byte-level mutation; `tokens` are format keywords worth inserting whole.
pub fn mutation(tokens: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    let inserted = prop_oneof![
        3 => select(tokens).prop_map(|token| token.as_bytes().to_vec()),
        2 => json::value().prop_map(|value| value.to_string().into_bytes()),
        1 => json::raw_scalar().prop_map(String::into_bytes),
        1 => vec(select(BYTES), 1..4),
        1 => vec(any::<u8>(), 1..8),
    ];
    prop_oneof![
        2 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        2 => (any::<Index>(), prop_oneof![select(BYTES), any::<u8>()])
            .prop_map(|(at, byte)| Mutation::SetByte { at, byte }),
        4 => (any::<Index>(), inserted).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        2 => (any::<Index>(), 1u8..32).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => (any::<Index>(), 1u8..64).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        1 => any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        2 => (any::<Index>(), any::<Index>(), 1u16..512, any::<Index>())
            .prop_map(|(other, from, len, at)| Mutation::Splice { other, from, len, at }),
    ]
}

/// One JSON-aware mutation.
pub fn json_mutation() -> impl Strategy<Value = JsonMutation> {
    prop_oneof![
        3 => (any::<Index>(), json::value())
            .prop_map(|(node, value)| JsonMutation::Replace { node, value }),
        2 => (any::<Index>(), json::key(), json::value())
            .prop_map(|(node, key, value)| JsonMutation::Add { node, key, value }),
        1 => (any::<Index>(), any::<Index>())
            .prop_map(|(node, member)| JsonMutation::Remove { node, member }),
    ]
}

/// Applies one mutation; positions are taken modulo the current length.
pub fn apply(bytes: &mut Vec<u8>, mutation: &Mutation, seeds: &[Vec<u8>]) {
    // One past the end is a valid insertion point, so an empty input can still grow.
    let position = |at: &Index, len: usize| at.index(len + 1);
    match mutation {
        Mutation::FlipBit { at, bit } if !bytes.is_empty() => {
            let idx = at.index(bytes.len());
            bytes[idx] ^= 1 << bit;
        }
        Mutation::SetByte { at, byte } if !bytes.is_empty() => {
            let idx = at.index(bytes.len());
            bytes[idx] = *byte;
        }
        Mutation::FlipBit { .. } | Mutation::SetByte { .. } => {}
        Mutation::Insert {
            at,
            bytes: inserted,
        } => {
            let idx = position(at, bytes.len());
            bytes.splice(idx..idx, inserted.iter().copied());
        }
        Mutation::Delete { at, len } => {
            let idx = position(at, bytes.len());
            let end = (idx + usize::from(*len)).min(bytes.len());
            bytes.drain(idx..end);
        }
        Mutation::Duplicate { at, len } => {
            let idx = position(at, bytes.len());
            let end = (idx + usize::from(*len)).min(bytes.len());
            let copy = bytes[idx..end].to_vec();
            bytes.splice(end..end, copy);
        }
        Mutation::Truncate { at } => {
            let idx = position(at, bytes.len());
            bytes.truncate(idx);
        }
        Mutation::Splice {
            other,
            from,
            len,
            at,
        } => {
            let other = other.get(seeds);
            let start = position(from, other.len());
            let end = (start + usize::from(*len)).min(other.len());
            let idx = position(at, bytes.len());
            bytes.splice(idx..idx, other[start..end].iter().copied());
        }
    }
}

/// Applies one JSON mutation; the node is picked among all nodes in pre-order.
pub fn apply_json(document: &mut Value, mutation: &JsonMutation) {
    let n_nodes = count_nodes(document);
    match mutation {
        JsonMutation::Replace { node, value } => {
            *nth_node(document, node.index(n_nodes)) = value.clone();
        }
        JsonMutation::Add { node, key, value } => match nth_node(document, node.index(n_nodes)) {
            Value::Object(map) => {
                map.insert(key.clone(), value.clone());
            }
            Value::Array(array) => array.push(value.clone()),
            _ => {}
        },
        JsonMutation::Remove { node, member } => match nth_node(document, node.index(n_nodes)) {
            Value::Object(map) if !map.is_empty() => {
                let key = map.keys().nth(member.index(map.len())).cloned();
                if let Some(key) = key {
                    map.remove(&key);
                }
            }
            Value::Array(array) if !array.is_empty() => {
                array.remove(member.index(array.len()));
            }
            _ => {}
        },
    }
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(array) => array.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// The `n`th node in pre-order; `n` must be below `count_nodes(value)`.
fn nth_node(value: &mut Value, n: usize) -> &mut Value {
    if n == 0 {
        return value;
    }
    let mut skipped = 1;
    let children: Vec<&mut Value> = match value {
        Value::Array(array) => array.iter_mut().collect(),
        Value::Object(map) => map.values_mut().collect(),
        _ => unreachable!("n is below the node count"),
    };
    for child in children {
        let size = count_nodes(child);
        if n < skipped + size {
            return nth_node(child, n - skipped);
        }
        skipped += size;
    }
    unreachable!("n is below the node count")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn mutations_apply_at_every_position_without_panicking() {
        let seeds = vec![b"{\"a\":[1,2]}".to_vec(), Vec::new()];
        let mut runner = TestRunner::deterministic();
        let strategy = (mutation(&["null"]), any::<Index>());
        for _ in 0..2_000 {
            let (mutation, seed) = strategy.new_tree(&mut runner).expect("a value").current();
            let mut bytes = seed.get(&seeds).clone();
            apply(&mut bytes, &mutation, &seeds);
        }
    }

    #[test]
    fn json_nodes_are_numbered_in_pre_order() {
        let mut document: Value = serde_json::from_str(r#"{"a":[1,{"b":2}],"c":3}"#).unwrap();
        assert_eq!(count_nodes(&document), 6);
        *nth_node(&mut document, 4) = Value::Null;
        assert_eq!(document.to_string(), r#"{"a":[1,{"b":null}],"c":3}"#);
    }
}
