"""Code-generation targets: what each target's templates are given."""
