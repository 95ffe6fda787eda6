//! BIND (named) on loopback for tests: see the module docs inside.
