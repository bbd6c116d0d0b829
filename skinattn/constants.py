"""Facts shared by every part of the project."""

# HAM10000 diagnosis codes, in the alphabetical order used for label indices everywhere.
HAM10000_CLASSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

