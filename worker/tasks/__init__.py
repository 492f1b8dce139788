"""Built-in LightningModules and LightningDataModules that need no download."""
