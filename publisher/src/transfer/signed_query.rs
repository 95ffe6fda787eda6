//! TSIG on answers to signed ordinary queries (RFC 8945 §5.3: a signed
//! request gets a signed response).
//!
//! Secondaries sign the SOA queries of their refresh checks with the
//! transfer key. BIND rejects an unsigned answer ("expected a TSIG or
//! SIG(0)") and so never transfers; Knot counts the refresh as failed. The
//! answer itself is the one the shared encoder (`crate::serve::wire`)
//! made; this module only appends the TSIG record, when the query is
//! signed with the zone's transfer key and verifies. Anything else keeps
//! the unsigned answer, as before.

use hickory_proto::op::Message;
use hickory_proto::rr::TSigResponseContext;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use tracing::debug;

use crate::zone::served::ServedZone;

/// Appends to `out`, the encoded answer to the TSIG-signed query
/// `packet`, a TSIG record signing it with `served`'s transfer key, if the
/// query is signed with that key and verifies; otherwise leaves `out` as
/// it is.
pub(crate) fn sign_answer(served: Option<&ServedZone>, packet: &[u8], out: &mut Vec<u8>) {
    let Some(key) = served
        .and_then(|s| s.zone.transfer.as_deref())
        .and_then(|p| p.key.as_ref())
    else {
        return;
    };
    if out.len() < 12 {
        return;
    }
    let Ok(request) = Message::from_vec(packet) else {
        return;
    };
    let Some(tsig) = request.signature() else {
        return;
    };
    if tsig.name.to_lowercase() != *key.name() {
        debug!(key = %tsig.name, "signed query with another key: answered unsigned");
        return;
    }
    let signer = key.signer();
    let mac = match signer.verify_message_byte(packet, None, true) {
        Ok((mac, _, window)) if window.contains(&super::now_secs()) => mac,
        Ok(_) => {
            debug!("signed query outside the TSIG time window: answered unsigned");
            return;
        }
        Err(e) => {
            debug!("signed query does not verify ({e}): answered unsigned");
            return;
        }
    };
    let context =
        TSigResponseContext::new(request.metadata.id, super::now_secs(), signer, mac, None);
    let Ok(record) = context.sign(out) else {
        return;
    };
    let mut bytes = Vec::with_capacity(128);
    if record.emit(&mut BinEncoder::new(&mut bytes)).is_err() {
        return;
    }
    let arcount = u16::from_be_bytes([out[10], out[11]]);
    let Some(arcount) = arcount.checked_add(1) else {
        return;
    };
    out.extend_from_slice(&bytes);
    out[10..12].copy_from_slice(&arcount.to_be_bytes());
}
