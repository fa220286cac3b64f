//! Deterministic fictitious people and companies.
//!
//! Benchmarks ask for millions of contacts, so nothing is stored: record `i` is generated on
//! demand from `(seed, i)` with a SplitMix64 stream. The same index always yields the same
//! person, in every dialect, which is what lets tests compute expected values without talking
//! to the server. Every name, street and city is invented; e-mail domains are `example.*` only
//! and phone numbers are mostly zeros, as in the shared fixtures.

/// SplitMix64: tiny, fast, and good enough to spread fixture values; no `rand` needed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64, salt: u64, index: u64) -> Self {
        // Mix the three inputs so neighbouring indices start far apart in the stream.
        let mut s =
            SplitMix64(seed ^ salt.rotate_left(17) ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        s.next();
        s
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (n > 0); the modulo bias is irrelevant for fixture data.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `num / den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

const PERSON_SALT: u64 = 0x5045_5253_4F4E;
const ACCOUNT_SALT: u64 = 0x0041_4343_4F55_4E54;

const FIRST_NAMES: &[(&str, &str)] = &[
    ("Livia", "Ms."),
    ("Tomasz", "Mr."),
    ("Marisol", "Ms."),
    ("Dorian", "Mr."),
    ("Henrike", "Ms."),
    ("Emeka", "Mr."),
    ("Saoirse", "Ms."),
    ("Oskar", "Mr."),
    ("Anouk", "Ms."),
    ("Quirin", "Mr."),
    ("Jorinde", "Ms."),
    ("Piet", "Mr."),
    ("Noemie", "Ms."),
    ("Bram", "Mr."),
    ("Greta", "Ms."),
    ("Radomir", "Mr."),
    ("Ines", "Ms."),
    ("Tancredi", "Mr."),
    ("Ylva", "Ms."),
    ("Casimir", "Mr."),
    ("Odalys", "Ms."),
    ("Fintan", "Mr."),
    ("Mireille", "Ms."),
    ("Leopold", "Dr."),
    ("Zofia", "Prof."),
];

const LAST_NAME_PARTS: &[&str] = &[
    "Marquardt",
    "Ostby",
    "Quill",
    "Everby",
    "Quenneville",
    "Abernathy",
    "Suzuki",
    "Solberg",
    "Achterberg",
    "Lindqvist",
    "Oduya",
    "Vandermolen",
    "Fennimore",
    "Laaksonen",
    "Brightwater",
    "Kappelhoff",
    "Adebayo",
    "Lenz",
    "Oosterhuis",
    "Mbeki",
    "Castellane",
    "Drury",
    "Oyelaran",
    "Frisk",
    "Holloway",
    "Nkemelu",
    "Ellingsworth",
    "Vantongeren",
    "Pemberwick",
    "Strandquist",
];

/// A fictional place per country: (country, city, state, street, postcode, phone prefix, mobile prefix).
type Place = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const PLACES: &[Place] = &[
    (
        "Germany",
        "Musterstadt",
        None,
        "Tannenweg",
        "99999",
        "+49 30 0000",
        "+49 151 0000",
    ),
    (
        "United States",
        "Sampleton",
        Some("ZZ"),
        "Placeholder Ave",
        "00000",
        "+1 555 0100",
        "+1 555 0199",
    ),
    (
        "United Kingdom",
        "Fakesbury",
        None,
        "Imaginary Row",
        "ZZ1 1ZZ",
        "+44 20 0000 ",
        "+44 7700 900",
    ),
    (
        "Netherlands",
        "Voorbeeldstad",
        None,
        "Verzonnenstraat",
        "0000 ZZ",
        "+31 20 000 ",
        "+31 6 0000 ",
    ),
    (
        "Norway",
        "Eksempelby",
        None,
        "Fiktivveien",
        "0000",
        "+47 00 00 ",
        "+47 400 00 ",
    ),
    (
        "Sweden",
        "Provstad",
        None,
        "Pahittadgatan",
        "000 00",
        "+46 8 000 ",
        "+46 70 000 ",
    ),
    (
        "France",
        "Villeimaginaire",
        None,
        "rue Fictive",
        "00000",
        "+33 1 00 00 ",
        "+33 6 00 00 ",
    ),
    (
        "Ireland",
        "Samplebridge",
        None,
        "Notreal Lane",
        "Z00 Z000",
        "+353 1 000 ",
        "+353 85 000 ",
    ),
    (
        "Finland",
        "Testikyla",
        None,
        "Esimerkkikatu",
        "00000",
        "+358 9 000",
        "+358 40 000",
    ),
];

const TITLES: &[(&str, &str)] = &[
    ("Head of Procurement", "Purchasing"),
    ("Data Protection Officer", "Legal"),
    ("Account Manager", "Sales"),
    ("Marketing Lead", "Marketing"),
    ("Operations Analyst", "Operations"),
    ("Chief Imagination Officer", "Management"),
];

const LEAD_SOURCES: &[&str] = &["Web", "Phone Inquiry", "Partner Referral", "Trade Show"];

/// HubSpot's default `hs_legal_basis` options (CRM-APIS.md §2.6); `;` joins several.
pub(crate) const LEGAL_BASES: &[&str] = &[
    "Legitimate interest \u{2013} prospect/lead",
    "Legitimate interest \u{2013} existing customer",
    "Performance of a contract",
    "Freely given consent from contact",
    "Not applicable",
];

const ACCOUNT_WORDS: &[&str] = &[
    "Fictional",
    "Northwind",
    "Imaginary",
    "Placeholder",
    "Notional",
    "Hypothetical",
    "Sample",
    "Pretend",
    "Makebelieve",
    "Dummy",
];
const ACCOUNT_NOUNS: &[&str] = &[
    "Widgets",
    "Tooling",
    "Traders",
    "Logistics",
    "Analytics",
    "Foods",
    "Textiles",
    "Robotics",
];
const INDUSTRIES: &[&str] = &[
    "Manufacturing",
    "Retail",
    "Technology",
    "Transportation",
    "Food & Beverage",
];

/// The Individual (Salesforce) consent flags carried by some people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Individual {
    pub has_opted_out_processing: bool,
    pub has_opted_out_profiling: bool,
    pub has_opted_out_solicit: bool,
    pub has_opted_out_tracking: bool,
    pub can_store_pii_elsewhere: bool,
}

/// One fictitious person, dialect-neutral. Each dialect renders it into its own wire shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Person {
    pub index: u64,
    pub salutation: &'static str,
    pub first_name: &'static str,
    pub last_name: String,
    pub email: String,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub birthdate: Option<String>,
    pub street: Option<String>,
    pub city: &'static str,
    pub state: Option<&'static str>,
    pub postal_code: Option<&'static str>,
    pub country: &'static str,
    pub title: &'static str,
    pub department: &'static str,
    pub lead_source: &'static str,
    /// Every third person has opted out of e-mail: consent filters always have work to do.
    pub email_opt_out: bool,
    pub bulk_email_opt_out: bool,
    pub fax_opt_out: bool,
    pub do_not_call: bool,
    pub gdpr_opt_out: bool,
    pub individual: Option<Individual>,
    /// Custom fields of the org: health data (Art. 9) for some, a store, free-text notes
    /// that quote an e-mail address or a phone number in some records, an IBAN on invoices.
    pub allergies: Option<String>,
    pub preferred_store: &'static str,
    pub notes: Option<String>,
    pub iban: Option<String>,
    pub legal_basis: Option<String>,
    pub account: Option<u64>,
    /// Number of child Cases (0..=2).
    pub cases: u32,
    /// `YYYY-MM-DDTHH:MM:SS.mmm`, no zone suffix; dialects add their own.
    pub created: String,
    pub modified: String,
}

impl Person {
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

/// One fictitious company.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Company {
    pub index: u64,
    pub name: String,
    pub domain: String,
    pub city: &'static str,
    pub country: &'static str,
    pub phone: String,
    pub industry: &'static str,
    pub created: String,
    pub modified: String,
}

/// The generator: all records are a pure function of `(seed, index)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Generator {
    pub seed: u64,
    pub contacts: u64,
}

impl Generator {
    pub fn new(seed: u64, contacts: u64) -> Self {
        Generator { seed, contacts }
    }

    /// One company per ten contacts, at least one.
    pub fn companies(&self) -> u64 {
        (self.contacts / 10).max(1)
    }

    pub fn person(&self, index: u64) -> Person {
        let mut r = SplitMix64::new(self.seed, PERSON_SALT, index);
        let (first_name, salutation) = r.pick(FIRST_NAMES);
        let a = r.pick(LAST_NAME_PARTS);
        let last_name = if r.chance(1, 2) {
            let b = r.pick(LAST_NAME_PARTS);
            if b == a {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        } else {
            a.to_string()
        };
        let domain = ["example.com", "example.org", "example.net"][(index % 3) as usize];
        // The index in the local part keeps addresses unique and lets lookups by e-mail be O(1).
        let email = format!(
            "{}.{}.{index}@{domain}",
            first_name.to_ascii_lowercase(),
            last_name.to_ascii_lowercase()
        );
        let place = r.pick(PLACES);
        let (country, city, state, street_name, postcode, phone_prefix, mobile_prefix) = place;
        let n = r.below(1000);
        let phone = r.chance(3, 4).then(|| format!("{phone_prefix}{n:03}"));
        let mobile = r
            .chance(2, 3)
            .then(|| format!("{mobile_prefix}{:03}", r.below(1000)));
        let birthdate = r.chance(3, 4).then(|| {
            format!(
                "{:04}-{:02}-{:02}",
                1950 + r.below(55),
                1 + r.below(12),
                1 + r.below(28)
            )
        });
        let street = r
            .chance(4, 5)
            .then(|| format!("{street_name} {}", 1 + r.below(120)));
        let postal_code = r.chance(4, 5).then_some(postcode);
        let (title, department) = r.pick(TITLES);
        let individual = r.chance(2, 3).then(|| Individual {
            has_opted_out_processing: index % 7 == 3,
            has_opted_out_profiling: r.chance(1, 3),
            has_opted_out_solicit: r.chance(1, 4),
            has_opted_out_tracking: r.chance(1, 2),
            can_store_pii_elsewhere: r.chance(1, 2),
        });
        let legal_basis = if r.chance(1, 5) {
            None
        } else if r.chance(1, 4) {
            Some(format!("{};{}", LEGAL_BASES[3], LEGAL_BASES[1]))
        } else {
            Some(r.pick(LEGAL_BASES).to_string())
        };
        let account = (index % 5 != 4).then(|| (index / 3) % self.companies());
        let created = timestamp(&mut r, 2023);
        let modified = timestamp(&mut r, 2024);
        let notes = custom_notes(index, &email, phone.as_deref());
        Person {
            index,
            salutation,
            first_name,
            last_name,
            email,
            phone,
            mobile,
            birthdate,
            street,
            city,
            state,
            postal_code,
            country,
            title,
            department,
            lead_source: r.pick(LEAD_SOURCES),
            email_opt_out: index % 3 == 1,
            bulk_email_opt_out: !index.is_multiple_of(3),
            fax_opt_out: r.chance(1, 2),
            do_not_call: index % 6 == 5,
            gdpr_opt_out: index % 9 == 4,
            individual,
            allergies: custom_allergies(index),
            preferred_store: STORES[(index % STORES.len() as u64) as usize],
            notes,
            iban: index
                .is_multiple_of(4)
                .then(|| IBAN_EXAMPLES[(index / 4 % 2) as usize].to_string()),
            legal_basis,
            account,
            cases: (r.below(4) as u32).min(2),
            created,
            modified,
        }
    }

    pub fn company(&self, index: u64) -> Company {
        let mut r = SplitMix64::new(self.seed, ACCOUNT_SALT, index);
        let place = r.pick(PLACES);
        let suffix = match place.0 {
            "Germany" => "GmbH",
            "Norway" => "AS",
            "Sweden" => "AB",
            "France" => "SARL",
            "Netherlands" => "B.V.",
            "Finland" => "Oy",
            "United States" => "Inc.",
            _ => "Ltd",
        };
        let word = r.pick(ACCOUNT_WORDS);
        let noun = r.pick(ACCOUNT_NOUNS);
        let name = format!("{word} {noun} {index} {suffix}");
        let domain = format!(
            "{}-{}-{index}.example.com",
            word.to_ascii_lowercase(),
            noun.to_ascii_lowercase()
        );
        Company {
            index,
            name,
            domain,
            city: place.1,
            country: place.0,
            phone: format!("{}{:03}", place.5, r.below(1000)),
            industry: r.pick(INDUSTRIES),
            created: timestamp(&mut r, 2022),
            modified: timestamp(&mut r, 2024),
        }
    }
}

const STORES: &[&str] = &["Berlin Mitte", "Oslo Sentrum", "Lyon Part-Dieu", "Online"];

/// Documentation IBANs (valid check digits, no real account).
const IBAN_EXAMPLES: &[&str] = &["DE89370400440532013000", "GB82WEST12345698765432"];

/// Derived from the index alone (no draw): adding the field changes no other value.
fn custom_allergies(index: u64) -> Option<String> {
    match index % 6 {
        1 => Some("Peanuts".into()),
        4 => Some("Lactose intolerance; asthma".into()),
        _ => None,
    }
}

/// Free text: most notes are harmless, some quote an e-mail address or a phone number.
fn custom_notes(index: u64, email: &str, phone: Option<&str>) -> Option<String> {
    match index % 5 {
        0 => Some("Prefers contact in the afternoon.".into()),
        1 => Some(format!("Send the catalogue to {email} please.")),
        2 => phone.map(|p| format!("Call back on {p} after 5pm.")),
        3 => Some("Met at the trade show.".into()),
        _ => None,
    }
}

fn timestamp(r: &mut SplitMix64, year: u64) -> String {
    format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000",
        1 + r.below(12),
        1 + r.below(28),
        r.below(24),
        r.below(60),
        r.below(60)
    )
}

/// Digits for Salesforce-style ids (base 36, upper case, fixed width).
pub(crate) fn base36(mut n: u64, width: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8(out).unwrap_or_default()
}

pub(crate) fn parse_base36(s: &str) -> Option<u64> {
    let mut n: u64 = 0;
    for c in s.chars() {
        let d = u64::from(c.to_digit(36)?);
        n = n.checked_mul(36)?.checked_add(d)?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_people() {
        let g = Generator::new(42, 1000);
        assert_eq!(g.person(17), g.person(17));
        assert_eq!(Generator::new(42, 1000).person(3), g.person(3));
        assert_ne!(Generator::new(43, 1000).person(17), g.person(17));
        assert_ne!(g.person(17), g.person(18));
        assert_eq!(g.company(2), g.company(2));
    }

    #[test]
    fn only_fictitious_domains_and_some_opt_outs() {
        let g = Generator::new(7, 300);
        let people: Vec<Person> = (0..300).map(|i| g.person(i)).collect();
        assert!(people.iter().all(|p| p.email.ends_with("@example.com")
            || p.email.ends_with("@example.org")
            || p.email.ends_with("@example.net")));
        let opted_out = people.iter().filter(|p| p.email_opt_out).count();
        assert_eq!(opted_out, 100);
        assert!(people.iter().any(|p| p.birthdate.is_none()));
        assert!(people.iter().any(|p| p.birthdate.is_some()));
        assert!(people.iter().any(|p| p.account.is_none()));
        assert!(people.iter().any(|p| p.cases == 0));
        assert!(people.iter().any(|p| p.cases > 0));
        assert!(people
            .iter()
            .all(|p| p.account.is_none_or(|a| a < g.companies())));
    }

    #[test]
    fn base36_round_trips() {
        for n in [0u64, 1, 35, 36, 1_000_000, 2_821_109_907_455] {
            assert_eq!(parse_base36(&base36(n, 8)), Some(n));
        }
        assert_eq!(base36(35, 3), "00Z");
        assert_eq!(parse_base36("!"), None);
    }
}
