"""Built-in hardware profiles (YAML); installed as the package data ``photoncc/hwprofiles``."""
