"""The istiod-style composition root: the same cores wired in one process.

Not built yet."""
