//! The BIO label set and entity chunking, defined once for every stage.
//!
//! Twitter-2015 names the fourth entity type OTHER and Twitter-2017 MISC; both read as [`EntityType::Misc`].
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityType {
    Per,
    Loc,
    Org,
    Misc,
}

impl EntityType {
    pub const ALL: [EntityType; 4] = [Self::Per, Self::Loc, Self::Org, Self::Misc];

    pub fn name(self) -> &'static str {
        match self {
            Self::Per => "PER",
            Self::Loc => "LOC",
            Self::Org => "ORG",
            Self::Misc => "MISC",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "PER" => Some(Self::Per),
            "LOC" => Some(Self::Loc),
            "ORG" => Some(Self::Org),
            "MISC" | "OTHER" => Some(Self::Misc),
            _ => None,
        }
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One token's BIO tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tag {
    O,
    B(EntityType),
    I(EntityType),
}

impl Tag {
    /// All tags in a fixed order (O first): the model's label indices.
    pub fn all() -> Vec<Tag> {
        let mut tags = vec![Tag::O];
        for ty in EntityType::ALL {
            tags.push(Tag::B(ty));
            tags.push(Tag::I(ty));
        }
        tags
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tag::O => f.write_str("O"),
            Tag::B(ty) => write!(f, "B-{ty}"),
            Tag::I(ty) => write!(f, "I-{ty}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLabel(pub String);

impl fmt::Display for UnknownLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown label {:?} (expected O, or B-/I- followed by PER, LOC, ORG, MISC or OTHER)",
            self.0
        )
    }
}

impl FromStr for Tag {
    type Err = UnknownLabel;

    fn from_str(label: &str) -> Result<Self, Self::Err> {
        if label == "O" {
            return Ok(Tag::O);
        }
        let parsed = match label.split_once('-') {
            Some(("B", ty)) => EntityType::parse(ty).map(Tag::B),
            Some(("I", ty)) => EntityType::parse(ty).map(Tag::I),
            _ => None,
        };
        parsed.ok_or_else(|| UnknownLabel(label.to_owned()))
    }
}

/// An entity: tokens `start..end` (end exclusive) of one sentence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub ty: EntityType,
}

/// Entities of one sentence, conlleval-style: an I- tag that does not continue an entity of its own type
/// (after O, or after another type) starts a new entity. Never call this across sentence boundaries.
pub fn spans(tags: &[Tag]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut open: Option<(usize, EntityType)> = None;
    for (i, tag) in tags.iter().enumerate() {
        let continues = matches!((tag, open), (Tag::I(ty), Some((_, cur))) if *ty == cur);
        if continues {
            continue;
        }
        if let Some((start, ty)) = open.take() {
            out.push(Span { start, end: i, ty });
        }
        match tag {
            Tag::B(ty) | Tag::I(ty) => open = Some((i, *ty)),
            Tag::O => {}
        }
    }
    if let Some((start, ty)) = open {
        out.push(Span {
            start,
            end: tags.len(),
            ty,
        });
    }
    out
}

/// Positions of I- tags that do not continue an entity of their own type (see [`spans`]).
pub fn stray_inside_tags(tags: &[Tag]) -> Vec<usize> {
    let mut prev = Tag::O;
    let mut out = Vec::new();
    for (i, &tag) in tags.iter().enumerate() {
        if let Tag::I(ty) = tag {
            let continues = matches!(prev, Tag::B(p) | Tag::I(p) if p == ty);
            if !continues {
                out.push(i);
            }
        }
        prev = tag;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(labels: &str) -> Vec<Tag> {
        labels
            .split_whitespace()
            .map(|l| l.parse().unwrap())
            .collect()
    }

    #[test]
    fn other_and_misc_are_one_type() {
        assert_eq!("B-OTHER".parse::<Tag>(), "B-MISC".parse::<Tag>());
        assert_eq!(Tag::B(EntityType::Misc).to_string(), "B-MISC");
    }

    #[test]
    fn unknown_labels_are_rejected() {
        for bad in ["B-FOO", "X-PER", "b-PER", "", "BPER", "B-"] {
            assert!(bad.parse::<Tag>().is_err(), "{bad}");
        }
    }

    #[test]
    fn stray_inside_starts_an_entity() {
        use EntityType::*;
        let t = tags("B-PER I-PER O I-LOC I-LOC B-ORG I-PER");
        let got = spans(&t);
        let want = vec![
            Span {
                start: 0,
                end: 2,
                ty: Per,
            },
            Span {
                start: 3,
                end: 5,
                ty: Loc,
            },
            Span {
                start: 5,
                end: 6,
                ty: Org,
            },
            Span {
                start: 6,
                end: 7,
                ty: Per,
            },
        ];
        assert_eq!(got, want);
        assert_eq!(stray_inside_tags(&t), vec![3, 6]);
    }

    #[test]
    fn entity_at_end_is_closed() {
        let t = tags("O B-MISC I-MISC");
        assert_eq!(spans(&t).len(), 1);
        assert_eq!(spans(&t)[0].end, 3);
    }
}
