// The lookup page (skeleton).
