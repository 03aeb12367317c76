"""Load benchmarks of the booking path; see bench/README.md."""
