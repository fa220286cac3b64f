//! ISO 3166-1 alpha-2: the officially assigned codes, upper case as the standard writes them.
//!
//! An upstream's `jurisdiction` decides whether a flow is a transfer to a third country and is
//! copied into every transfer record, so a typo (`UK` for `GB`, `XX`, `ie`) would put a
//! country no auditor can resolve into the log. Codes are compared as written: the log and
//! the Art. 30 record carry the value verbatim, so a lower-case code is refused with the
//! spelling to use rather than silently upper-cased. Reserved and user-assigned codes (`EU`,
//! `UK`, `XA`-`XZ`, `ZZ`) are refused too.

/// The 249 officially assigned codes.
const ASSIGNED: &str = "\
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
DE DJ DK DM DO DZ \
EC EE EG EH ER ES ET \
FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY \
HK HM HN HR HT HU \
ID IE IL IM IN IO IQ IR IS IT \
JE JM JO JP \
KE KG KH KI KM KN KP KR KW KY KZ \
LA LB LC LI LK LR LS LT LU LV LY \
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
NA NC NE NF NG NI NL NO NP NR NU NZ \
OM \
PA PE PF PG PH PK PL PM PN PR PS PT PW PY \
QA \
RE RO RS RU RW \
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ \
UA UG UM US UY UZ \
VA VC VE VG VI VN VU \
WF WS \
YE YT \
ZA ZM ZW";

/// Whether `code` is an assigned ISO 3166-1 alpha-2 code, exactly as written (upper case).
pub fn is_assigned(code: &str) -> bool {
    code.len() == 2 && ASSIGNED.split(' ').any(|c| c == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_has_the_249_assigned_codes_once_each_in_order() {
        let codes: Vec<&str> = ASSIGNED.split(' ').collect();
        assert_eq!(codes.len(), 249);
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, codes);
        assert!(codes
            .iter()
            .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())));
    }

    #[test]
    fn codes_are_compared_as_written() {
        for ok in ["DE", "IE", "US", "GB", "AX", "ZW"] {
            assert!(is_assigned(ok), "{ok}");
        }
        for bad in ["XX", "ie", "Ie", "UK", "EU", "ZZ", "USA", "", " D", "DE "] {
            assert!(!is_assigned(bad), "{bad}");
        }
    }
}
