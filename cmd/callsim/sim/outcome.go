package sim

// Outcome is how a call ended, from callsim's point of view: a closed set.
type Outcome string

// The outcomes.
const (
	Completed Outcome = "completed" // reached an agent, audio both ways, hung up after the talk time (Config.FirstPrompt: heard the first prompt)
	Abandoned Outcome = "abandoned" // hung up on purpose while waiting (Config.Abandon)
	Failed    Outcome = "failed"    // see the reason
	CutOff    Outcome = "cut_off"   // the run was stopped while the call was in progress
)

// Reasons a call failed: a closed set, used in the report's failure counts
// (a rejection is counted as rejected_<status>).
const (
	ReasonRejected          = "rejected"              // a final non-2xx answer to the INVITE
	ReasonNoAnswer          = "no_answer"             // no final answer within the answer timeout
	ReasonDialError         = "dial_error"            // the INVITE could not be sent, or the answer was unusable
	ReasonNoDTMF            = "no_dtmf"               // the server did not accept telephone-event
	ReasonNoPrompt          = "no_prompt"             // Config.FirstPrompt: no sound within the answer timeout of the answer
	ReasonHungUpBeforeAgent = "hung_up_before_agent"  // the server hung up before an agent was heard
	ReasonNoAgent           = "no_agent"              // no agent heard within the agent timeout
	ReasonNoAudioToCaller   = "no_audio_to_caller"    // the agent was connected but the caller heard nothing of it
	ReasonNoAudioToAgent    = "no_audio_to_agent"     // the caller heard the agent, the agent heard nothing of the caller
	ReasonHungUpTalking     = "hung_up_while_talking" // the server hung up before the talk time was over
)
