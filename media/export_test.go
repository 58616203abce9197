package media

// Hooks for the black-box tests in package media_test, which need pion
// clients from media/nodetest (which imports media).

// SetEstimate replaces a session's bandwidth estimate, to simulate a
// subscriber whose path narrows; 0 means unknown.
func SetEstimate(p Participant, f func() int) {
	p.(*Session).estimateOverride.Store(&f)
}

// FeedbackReports counts the transport-wide feedback reports a session's
// estimator has read.
func FeedbackReports(p Participant) int64 {
	s := p.(*Session)
	if s.bwe == nil {
		return 0
	}
	return s.bwe.reports.Load()
}

// Estimate is a session's bandwidth estimate.
func Estimate(p Participant) int { return p.(*Session).estimate() }
