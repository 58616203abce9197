package audit

// RootForTest exposes the recursive tree hash for the RFC 6962 vectors.
func RootForTest(leaves [][]byte) []byte { return rootOf(leaves) }

// CompactRootForTest builds the same root through the compact range.
func CompactRootForTest(leaves [][]byte) []byte {
	t := newTree()
	for _, l := range leaves {
		t.append(l)
	}
	return t.root()
}
