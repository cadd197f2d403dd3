"""The five independently deployed services; none imports another."""
