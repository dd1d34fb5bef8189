package callerid

// Caller is what is known about the person calling. The zero value is an
// unidentified caller whose number could not be read.
type Caller struct {
	Number     string // E.164, e.g. "+14155550100"; empty when the number was not a phone number
	Name       string
	CustomerID string
	Tier       string // free-form service tier, e.g. "vip" or "standard"
	Identified bool   // true when the directory or the CRM knew the number
	Source     string // SourceDirectory, SourceCRM, or "" when unidentified
}

// Where an identified caller's data came from (Caller.Source).
const (
	SourceDirectory = "directory"
	SourceCRM       = "crm"
)
