//! The zone-file reader (`publisher/src/zone/zonefile.rs`), which reads back the
//! kept zone at restart and for incremental builds.
//!
//! Input: any text. Properties: [`zonefile::parse`] never panics; what it
//! accepts renders ([`zonefile::render`]) to text that parses back to an
//! equal zone and renders to the same bytes again; the serial read from
//! the rendered text is the zone's; every error names a line that exists
//! (or 0 for the whole file).

use mimi_publisher::zone::zonefile;

/// The target body.
pub fn run(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    match zonefile::parse(text) {
        Ok(zone) => {
            let rendered = zonefile::render(&zone);
            let again = zonefile::parse(&rendered)
                .unwrap_or_else(|e| panic!("rendered zone does not parse: {e}\n{rendered}"));
            assert_eq!(again, zone, "render → parse changes the zone");
            assert_eq!(zonefile::render(&again), rendered, "render is not stable");
            assert_eq!(zonefile::read_serial(&rendered), Some(zone.soa.serial));
        }
        Err(e) => {
            assert!(
                e.line <= text.lines().count(),
                "error at line {} of {}",
                e.line,
                text.lines().count()
            );
        }
    }
}
