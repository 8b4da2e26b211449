//! Parse errors: what went wrong, where, and what would have been right, in words.
//!
//! pest reports a failure as the set of grammar rules it tried at the furthest position it
//! reached. This module owns the translation of that set into a sentence ("expected `of`, `<=`
//! or the end of the spec"), the choice of the span to underline (the word found there, or the
//! end of the spec), and a help line for the mistakes people actually make. Rule names never
//! reach the user.

use std::fmt;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use thiserror::Error;

use crate::ast::Span;
use crate::parser::Rule;

/// A spec that is not well formed. Renders with `miette`, underlining the place in the spec.
///
/// Boxed because it carries the whole spec text for rendering, and it travels in every
/// `Result` of the parser.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{}", .0.message)]
pub struct ParseError(Box<Details>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Details {
    kind: ParseErrorKind,
    message: String,
    src: NamedSource<String>,
    span: Span,
    label: String,
    help: Option<String>,
}

/// What kind of mistake a [`ParseError`] is about, for callers that react to it rather than
/// print it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The spec is empty or only white space.
    Empty,
    /// The text stops following the grammar at [`ParseError::span`].
    Syntax,
    /// An axis number does not fit in a `usize`.
    AxisTooLarge,
    /// A bug in multiproj: the grammar and the AST builder disagree.
    Internal,
}

/// Written out rather than derived: the code depends on the kind (a bug in multiproj is not
/// the user's parse error), and the details sit behind a `Box`.
impl Diagnostic for ParseError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(match self.0.kind {
            ParseErrorKind::Internal => "multiproj::internal",
            _ => "multiproj::parse",
        }))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display + 'a>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.0.src)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span: SourceSpan = self.0.span.into();
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(self.0.label.clone()),
            span,
        ))))
    }
}

impl ParseError {
    /// What kind of mistake this is.
    pub fn kind(&self) -> ParseErrorKind {
        self.0.kind
    }

    /// Where in the spec the error is: the offending word, or the last word when the spec
    /// stops short.
    pub fn span(&self) -> Span {
        self.0.span
    }

    /// The one-line message, e.g. "expected `over`".
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The text of the label under [`Self::span`], e.g. "found `l3`".
    pub fn label(&self) -> &str {
        &self.0.label
    }

    /// A hint on how to fix the spec, when there is one.
    pub fn help(&self) -> Option<&str> {
        self.0.help.as_deref()
    }

    fn new(
        kind: ParseErrorKind,
        src: &str,
        span: Span,
        message: String,
        label: String,
        help: Option<String>,
    ) -> Self {
        ParseError(Box::new(Details {
            kind,
            message,
            src: NamedSource::new("spec", src.to_owned()),
            span,
            label,
            help,
        }))
    }

    pub(crate) fn axis_too_large(src: &str, span: Span) -> Self {
        let text = &src[span.start..span.end];
        Self::new(
            ParseErrorKind::AxisTooLarge,
            src,
            span,
            format!("axis number {text} is too large"),
            "too large to be an axis".to_owned(),
            Some("axes are numbered from 0 up to the rank of the tensor minus one".to_owned()),
        )
    }

    pub(crate) fn internal(src: &str, what: &str) -> Self {
        Self::new(
            ParseErrorKind::Internal,
            src,
            Span::new(0, src.len()),
            format!("internal error while parsing the spec: {what}"),
            "in this spec".to_owned(),
            Some("this is a bug in multiproj; please report it with the spec".to_owned()),
        )
    }

    pub(crate) fn from_pest(src: &str, err: &pest::error::Error<Rule>) -> Self {
        if src.trim_matches(is_spec_space).is_empty() {
            return Self::new(
                ParseErrorKind::Empty,
                src,
                Span::new(0, src.len()),
                "the spec is empty".to_owned(),
                "nothing to parse".to_owned(),
                Some(format!(
                    "a spec looks like `{EXAMPLE}`, optionally followed by `<= R`"
                )),
            );
        }
        let pos = match err.location {
            pest::error::InputLocation::Pos(pos) => pos,
            pest::error::InputLocation::Span((start, _)) => start,
        };
        let (positives, negatives) = match &err.variant {
            pest::error::ErrorVariant::ParsingError {
                positives,
                negatives,
            } => (positives.as_slice(), negatives.as_slice()),
            // The grammar has no custom errors, so pest never produces one for it.
            pest::error::ErrorVariant::CustomError { message } => {
                return Self::internal(src, message);
            }
        };
        Self::syntax(src, pos, positives, negatives)
    }

    fn syntax(src: &str, pos: usize, positives: &[Rule], negatives: &[Rule]) -> Self {
        // At the start of a spec pest reports `spec` as a whole (its first word may be
        // `exact` or the first level's norm); what a reader is missing there is the norm, so that
        // is what the message names and what the hints below look for.
        let positives: Vec<Rule> = positives
            .iter()
            .map(|r| if *r == Rule::spec { Rule::norm } else { *r })
            .collect();
        let positives = positives.as_slice();
        let found = found_at(src, pos);
        let pos = found.map_or(pos, |(start, _)| start);
        let found = found.map(|(_, word)| word);
        let message = match (phrases(positives), phrases(negatives)) {
            (expected, _) if !expected.is_empty() => format!("expected {}", join_or(&expected)),
            (_, unexpected) if !unexpected.is_empty() => {
                format!("unexpected {}", join_or(&unexpected))
            }
            _ => "the spec does not follow the grammar here".to_owned(),
        };
        let (span, label) = match found {
            // miette draws nothing for an empty span at the very end of the source, so the
            // label goes on the last word instead: that is where the reader has to add text.
            None => (
                last_word_before(src, pos),
                "unexpected end of the spec after this".to_owned(),
            ),
            Some(word) => {
                let span = Span::new(pos, pos + word.len());
                if word.chars().count() <= MAX_QUOTED {
                    (span, format!("found `{word}`"))
                } else {
                    (span, "unexpected text".to_owned())
                }
            }
        };
        let help = help_for(positives, found, src.get(..pos).unwrap_or(src));
        Self::new(ParseErrorKind::Syntax, src, span, message, label, help)
    }
}

/// The spec used in help texts; the same everywhere so that people see one shape.
const EXAMPLE: &str = "l1 over dim0 of linf over dim1";

/// Longer offending words are underlined but not repeated in the label.
const MAX_QUOTED: usize = 24;

/// The word at `pos` and where it starts: everything up to the next white space. `None` at the
/// end of the spec.
///
/// White space, not the grammar's tokens, delimits it because the text there is by definition
/// not a token of the grammar; this is also what a reader sees as "the word". pest reports
/// positions after skipped white space, but starting a word there is not left to chance.
fn found_at(src: &str, pos: usize) -> Option<(usize, &str)> {
    let rest = src.get(pos..)?;
    let trimmed = rest.trim_start_matches(is_spec_space);
    let start = pos + (rest.len() - trimmed.len());
    let end = trimmed.find(is_spec_space).unwrap_or(trimmed.len());
    (end > 0).then(|| (start, &trimmed[..end]))
}

/// The last white-space-delimited word ending at or before `pos`; the spec is not blank here
/// (that case is reported as empty), so there is one.
fn last_word_before(src: &str, pos: usize) -> Span {
    let head = src
        .get(..pos)
        .unwrap_or(src)
        .trim_end_matches(is_spec_space);
    // Spec white space is ASCII, so the character found is one byte long.
    let start = head.rfind(is_spec_space).map_or(0, |i| i + 1);
    Span::new(start, head.len())
}

/// White space as the grammar defines it (`WHITESPACE` in `spec.pest`). Other Unicode spaces
/// are not separators, so they are part of the word that is reported.
fn is_spec_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// What each rule stands for, in the words of `docs/SEMANTICS.md` §1.
fn phrase(rule: Rule) -> &'static str {
    match rule {
        Rule::spec | Rule::level => "a level such as `l1 over dim0`",
        Rule::norm => "a norm: l1, l2 or linf",
        Rule::kw_over => "`over`",
        Rule::axes | Rule::axes_list | Rule::axes_range | Rule::axes_from | Rule::axes_one => {
            "an axis clause: `dim N`, `dims A..B`, `dims A..` or `dims A,B`"
        }
        Rule::kw_dims => "`dims`",
        Rule::kw_dim => "`dim`",
        Rule::int => "an axis number",
        Rule::dotdot => "`..`",
        Rule::comma => "`,`",
        Rule::kw_of => "`of`",
        Rule::kw_exact => "`exact`",
        Rule::le => "`<=`",
        Rule::radius => "a radius (a non-negative number)",
        Rule::EOI => "the end of the spec",
        // Silent rules: pest never reports them, but the enum has them.
        Rule::WHITESPACE => "white space",
        Rule::word_char => "a letter or digit",
    }
}

/// The phrases for a set of rules, without repeats, in the order they would be written in a
/// spec (pest's own order is the rule declaration order, which is not a reading order).
fn phrases(rules: &[Rule]) -> Vec<&'static str> {
    let mut sorted: Vec<Rule> = rules.to_vec();
    sorted.sort_by_key(|r| reading_order(*r));
    let mut out: Vec<&'static str> = Vec::new();
    for rule in sorted {
        let p = phrase(rule);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn reading_order(rule: Rule) -> u8 {
    match rule {
        Rule::kw_exact | Rule::spec | Rule::level => 0,
        Rule::norm => 1,
        Rule::kw_over => 2,
        Rule::axes | Rule::axes_list | Rule::axes_range | Rule::axes_from | Rule::axes_one => 3,
        Rule::kw_dims => 4,
        Rule::kw_dim => 5,
        Rule::int => 6,
        Rule::dotdot => 7,
        Rule::comma => 8,
        Rule::kw_of => 9,
        Rule::le => 10,
        Rule::radius => 11,
        Rule::EOI => 12,
        Rule::WHITESPACE | Rule::word_char => 13,
    }
}

/// "a", "a or b", "a, b or c".
fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A hint for the mistakes that have a likely fix. `None` when the message says it all.
fn help_for(expected: &[Rule], found: Option<&str>, before: &str) -> Option<String> {
    let expects = |rule: Rule| expected.contains(&rule);
    let only = |rule: Rule| !expected.is_empty() && expected.iter().all(|r| *r == rule);

    if let Some(word) = found {
        if word.starts_with(char::is_whitespace) {
            return Some(
                "only spaces, tabs and line breaks separate words; retype this space".to_owned(),
            );
        }
        // `l1over`, `ofl1`, `overdim0`: a keyword that would have been right, run into the
        // next word. Only when a letter follows: `l10` is not `l1 0`.
        let keywords: &[(Rule, &str)] = &[
            (Rule::norm, "linf"),
            (Rule::norm, "l1"),
            (Rule::norm, "l2"),
            (Rule::kw_over, "over"),
            (Rule::kw_of, "of"),
            (Rule::norm, "exact"),
        ];
        for (rule, kw) in keywords {
            if let Some(rest) = word.strip_prefix(kw)
                && rest.starts_with(|c: char| c.is_ascii_alphabetic())
                && expects(*rule)
            {
                return Some(format!("separate the words: `{kw} {rest}`"));
            }
        }
        if expects(Rule::norm) && is_norm(&word.to_ascii_lowercase()) {
            return Some(format!(
                "norms are written in lower case: `{}`",
                word.to_ascii_lowercase()
            ));
        }
    }

    if only(Rule::norm) && found.is_none() && before.trim_end_matches(is_spec_space) == "exact" {
        return Some(format!(
            "`exact` is followed by the spec whose ball to project on: `exact {EXAMPLE}`"
        ));
    }
    if only(Rule::norm) {
        // A norm is expected at the start (where an empty spec was already handled) or after
        // `of`; at the end of the spec it can only be a trailing `of`.
        return found
            .is_none()
            .then(|| format!("`of` must be followed by another level: `{EXAMPLE}`, or removed"));
    }
    if only(Rule::kw_over) {
        return Some(format!(
            "a level reads `<norm> over <axes>`, as in `{EXAMPLE}`"
        ));
    }
    if only(Rule::axes) {
        return found
            .filter(|w| w.starts_with(|c: char| c.is_ascii_digit()))
            .map(|w| {
                let n: String = w.chars().take_while(char::is_ascii_digit).collect();
                format!("name the axis with `dim`: `dim {n}`")
            });
    }
    if expects(Rule::dotdot) && expects(Rule::comma) {
        return Some(
            "`dims` takes a range or a list: `dims 1..3`, `dims 1..` or `dims 0,2`; \
             a single axis is `dim N`"
                .to_owned(),
        );
    }
    if only(Rule::radius) {
        return Some(
            "a radius is a number such as `1`, `0.5` or `1e-3`; \
             leave out `<= R` to give the radius at run time"
                .to_owned(),
        );
    }
    if only(Rule::EOI) {
        // Only a radius can be followed by nothing but the end.
        let word = found?;
        return Some(if is_exact(word) {
            format!("`exact` comes first: `exact {EXAMPLE}`")
        } else if word.starts_with("<=") {
            "a spec fixes at most one radius".to_owned()
        } else if word.starts_with("of") || starts_with_norm(word) {
            format!("the radius comes last: `{EXAMPLE} <= 1`")
        } else {
            "the radius `<= R` ends the spec".to_owned()
        });
    }
    if expects(Rule::kw_of) && expects(Rule::EOI) {
        let word = found?;
        if is_exact(word) {
            return Some(format!("`exact` comes first: `exact {EXAMPLE}`"));
        }
        if starts_with_norm(word) {
            return Some(format!("levels are joined with `of`: `{EXAMPLE}`"));
        }
        if word.starts_with(['<', '=']) {
            return Some("a fixed radius is written `<= R`, as in `l1 over dim0 <= 1`".to_owned());
        }
    }
    None
}

/// `exact`, or `exact` run into the next word.
fn is_exact(word: &str) -> bool {
    word.strip_prefix("exact")
        .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
}

fn is_norm(word: &str) -> bool {
    matches!(word, "l1" | "l2" | "linf")
}

fn starts_with_norm(word: &str) -> bool {
    ["linf", "l1", "l2"].iter().any(|n| word.starts_with(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_english() {
        assert_eq!(join_or(&[]), "");
        assert_eq!(join_or(&["a"]), "a");
        assert_eq!(join_or(&["a", "b"]), "a or b");
        assert_eq!(join_or(&["a", "b", "c"]), "a, b or c");
    }

    #[test]
    fn phrases_follow_reading_order_without_repeats() {
        let rules = [Rule::EOI, Rule::axes_one, Rule::kw_of, Rule::axes, Rule::le];
        assert_eq!(
            phrases(&rules),
            [
                "an axis clause: `dim N`, `dims A..B`, `dims A..` or `dims A,B`",
                "`of`",
                "`<=`",
                "the end of the spec",
            ]
        );
    }

    #[test]
    fn the_found_word_ends_at_white_space() {
        assert_eq!(found_at("l1 over x1,2 of", 8), Some((8, "x1,2")));
        assert_eq!(found_at("l1 over  \n x", 7), Some((11, "x")));
        assert_eq!(found_at("l1 over", 7), None);
        assert_eq!(found_at("l1 over   ", 7), None);
        assert_eq!(found_at("é", 1), None, "not a char boundary");
        assert_eq!(found_at("l1\u{3000}over", 2), Some((2, "\u{3000}over")));
    }

    #[test]
    fn the_last_word_is_found_across_white_space() {
        assert_eq!(last_word_before("l1 over", 7), Span::new(3, 7));
        assert_eq!(last_word_before("l1 over \n ", 10), Span::new(3, 7));
        assert_eq!(last_word_before("over", 4), Span::new(0, 4));
        assert_eq!(last_word_before("l1 over é\t", 11), Span::new(8, 10));
        assert_eq!(last_word_before("l1 over\u{3000}x", 11), Span::new(3, 11));
    }
}
