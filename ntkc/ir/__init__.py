"""ntkc's intermediate representation: the linear program (graph) and the NTK plan (terms)."""
