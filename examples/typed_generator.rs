//! A typed generator (`greenlet::Generator<Y, R>`): a tokenizer that yields
//! tokens one at a time from its own greenlet and finally returns a summary,
//! consumed lazily by a plain `for` loop.
//!
//! Run: `cargo run --example typed_generator`

use greenlet::{Generator, Yielder};

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Number(f64),
    Word(&'a str),
    Symbol(char),
}

/// Yields the tokens of `text`; returns how many characters it skipped.
fn tokenize(text: &'static str, y: &Yielder<Token<'static>>) -> usize {
    let mut skipped = 0;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            skipped += 1;
            rest = &rest[c.len_utf8()..];
        } else if c.is_ascii_digit() {
            let end = rest
                .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
                .unwrap_or(rest.len());
            y.yield_(Token::Number(rest[..end].parse().expect("digits and dots")));
            rest = &rest[end..];
        } else if c.is_alphabetic() {
            let end = rest
                .find(|ch: char| !ch.is_alphanumeric())
                .unwrap_or(rest.len());
            y.yield_(Token::Word(&rest[..end]));
            rest = &rest[end..];
        } else {
            y.yield_(Token::Symbol(c));
            rest = &rest[c.len_utf8()..];
        }
    }
    skipped
}

fn main() {
    let mut tokens = Generator::new(|y| tokenize("area = pi * 2.5 * r2", y));
    for token in tokens.by_ref() {
        println!("{token:?}");
    }
    println!(
        "skipped {} blanks",
        tokens.return_value().expect("the tokenizer returned")
    );
}
