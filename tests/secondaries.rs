//! Knot, NSD and unbound on loopback for the topology test.
