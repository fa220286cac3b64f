//! The data-category taxonomy: fideslang's `user.*` and `system.*` names shipped as data
//! (`taxonomy.txt`), so inventories stay exchangeable with privacy tools that speak fideslang.
//!
//! Categories are interned: the engine works on `CatId`s (indices) and only turns them back into
//! names when it reports. `unclassified` is Zweck's own category for everything no selector
//! classified; `system` and `system.*` mark non-personal fields.

const DATA: &str = include_str!("taxonomy.txt");
const DATA_USES: &str = include_str!("data_uses.txt");

/// A built-in group of categories: a purpose's rule for the group's name applies to each.
#[derive(Debug, Clone, Copy)]
pub struct Group {
    pub name: &'static str,
    /// What the group stands for (for docs and `policy check` messages).
    pub title: &'static str,
    pub categories: &'static [&'static str],
}

/// GDPR Art. 9(1) special categories, mapped onto fideslang (and Zweck's two extensions).
pub const GDPR_ART9: Group = Group {
    name: "gdpr.art9",
    title: "GDPR Art. 9 special categories",
    categories: &[
        "user.demographic.race_ethnicity",
        "user.demographic.political_opinion",
        "user.demographic.religious_belief",
        "user.demographic.trade_union_membership",
        "user.health_and_medical",
        "user.biometric",
        "user.authorization.biometric",
        "user.demographic.sexual_orientation",
        "user.demographic.sex_life",
    ],
};

/// GDPR Art. 10: personal data relating to criminal convictions and offences.
pub const GDPR_ART10: Group = Group {
    name: "gdpr.art10",
    title: "GDPR Art. 10 criminal-conviction data",
    categories: &["user.criminal_history"],
};

/// The built-in groups.
pub const GROUPS: [Group; 2] = [GDPR_ART9, GDPR_ART10];

/// The fideslang data uses (`data_use:` of a purpose), from `data_uses.txt`.
pub fn data_uses() -> impl Iterator<Item = &'static str> {
    DATA_USES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Index of a category in the taxonomy.
pub type CatId = u16;

/// One category.
#[derive(Debug, Clone)]
pub struct Category {
    /// Dotted fideslang name (static: the taxonomy is compiled in, so outcomes and reports
    /// name categories without allocating).
    pub name: &'static str,
    /// The category one level up, if any.
    pub parent: Option<CatId>,
    /// `system` or below: not personal data.
    pub system: bool,
}

/// The interned taxonomy.
#[derive(Debug, Clone)]
pub struct Taxonomy {
    cats: Vec<Category>,
    by_name: super::FastMap<&'static str, CatId>,
    /// Every id, ordered by name: sets of names are built from it already sorted.
    name_order: Vec<CatId>,
    unclassified: CatId,
}

/// The name of the category of fields no selector classified.
pub const UNCLASSIFIED: &str = "unclassified";

impl Taxonomy {
    /// The shipped fideslang taxonomy plus `unclassified`.
    pub fn builtin() -> Taxonomy {
        let mut names: Vec<&'static str> = DATA
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        names.push(UNCLASSIFIED);
        let mut cats = Vec::with_capacity(names.len());
        let mut by_name = super::FastMap::with_capacity_and_hasher(names.len(), Default::default());
        for (i, name) in names.iter().enumerate() {
            let parent = name
                .rsplit_once('.')
                .and_then(|(p, _)| by_name.get(p).copied());
            cats.push(Category {
                name,
                parent,
                system: *name == "system" || name.starts_with("system."),
            });
            by_name.insert(*name, i as CatId);
        }
        let unclassified = by_name.get(UNCLASSIFIED).copied().unwrap_or(0);
        let mut name_order: Vec<CatId> = (0..cats.len()).map(|i| i as CatId).collect();
        name_order.sort_by_key(|i| cats[*i as usize].name);
        Taxonomy {
            cats,
            by_name,
            name_order,
            unclassified,
        }
    }

    /// Looks a name up.
    pub fn get(&self, name: &str) -> Option<CatId> {
        self.by_name.get(name).copied()
    }

    /// The category behind an id.
    pub fn cat(&self, id: CatId) -> &Category {
        &self.cats[id as usize]
    }

    /// The name behind an id.
    pub fn name(&self, id: CatId) -> &'static str {
        self.cats[id as usize].name
    }

    /// Every id, in the order of the names (as a `BTreeSet` of names holds them).
    pub fn in_name_order(&self) -> impl Iterator<Item = CatId> + '_ {
        self.name_order.iter().copied()
    }

    /// Number of categories.
    pub fn len(&self) -> usize {
        self.cats.len()
    }

    /// Never empty; here for clippy.
    pub fn is_empty(&self) -> bool {
        self.cats.is_empty()
    }

    /// The id of `unclassified`.
    pub fn unclassified(&self) -> CatId {
        self.unclassified
    }

    /// True for `system` and `system.*`.
    pub fn is_system(&self, id: CatId) -> bool {
        self.cats[id as usize].system
    }

    /// `id` itself, then each ancestor up to the root.
    pub fn lineage(&self, id: CatId) -> impl Iterator<Item = CatId> + '_ {
        std::iter::successors(Some(id), move |c| self.cats[*c as usize].parent)
    }

    /// All names, for listing.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.cats.iter().map(|c| c.name)
    }

    /// The closest known name, for "did you mean".
    pub fn suggest(&self, name: &str) -> Option<&str> {
        suggest(name, self.names())
    }
}

/// The closest candidate within a small edit distance (Levenshtein, in characters).
pub fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).clamp(2, 6);
    candidates
        .map(|c| (strsim::levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_and_system() {
        let t = Taxonomy::builtin();
        let email = t.get("user.contact.email").expect("email");
        let names: Vec<&str> = t.lineage(email).map(|c| t.name(c)).collect();
        assert_eq!(names, ["user.contact.email", "user.contact", "user"]);
        assert!(t.is_system(t.get("system.operations").expect("ops")));
        assert!(!t.is_system(t.unclassified()));
    }

    #[test]
    fn name_order_is_every_id_sorted_by_name() {
        let t = Taxonomy::builtin();
        let ordered: Vec<&str> = t.in_name_order().map(|i| t.name(i)).collect();
        let mut sorted: Vec<&str> = t.names().collect();
        sorted.sort_unstable();
        assert_eq!(ordered, sorted);
    }

    #[test]
    fn groups_name_known_categories_and_data_uses_are_listed() {
        let t = Taxonomy::builtin();
        for g in GROUPS {
            for c in g.categories {
                assert!(t.get(c).is_some(), "{}: {c}", g.name);
            }
            assert!(t.get(g.name).is_none(), "{} is also a category", g.name);
        }
        assert!(data_uses().any(|u| u == "marketing.communications.email"));
        // every data use's parent is a data use too
        let all: Vec<&str> = data_uses().collect();
        for u in &all {
            if let Some((parent, _)) = u.rsplit_once('.') {
                assert!(all.contains(&parent), "{u} has no parent {parent}");
            }
        }
    }

    #[test]
    fn did_you_mean() {
        let t = Taxonomy::builtin();
        assert_eq!(t.suggest("user.contact.emial"), Some("user.contact.email"));
        assert_eq!(t.suggest("user.name.frist"), Some("user.name.first"));
        assert_eq!(t.suggest("completely.different.thing.here"), None);
    }
}
