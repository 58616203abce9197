package media

// Hooks for the black-box tests in package media_test, which need pion
// clients from media/nodetest (which imports media).

// SetEstimate replaces a session's bandwidth estimate, to simulate a
// subscriber whose path narrows; 0 means unknown.
func SetEstimate(p Participant, f func() int) {
	p.(*Session).estimateOverride.Store(&f)
}
