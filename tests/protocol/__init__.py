"""Tests of the dispute protocol: the arbiter's steps, bundles, and attacks."""
