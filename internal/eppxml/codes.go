package eppxml

// Result codes (RFC 5730 3).
const (
	CodeOK                 = 1000
	CodePending            = 1001
	CodeNoMessages         = 1300
	CodeAckToDequeue       = 1301
	CodeBye                = 1500
	CodeUnknownCommand     = 2000
	CodeSyntax             = 2001
	CodeUseError           = 2002
	CodeParamMissing       = 2003
	CodeValueRange         = 2004
	CodeValueSyntax        = 2005
	CodeUnimplVersion      = 2100
	CodeUnimplCommand      = 2101
	CodeUnimplOption       = 2102
	CodeUnimplExtension    = 2103
	CodeBilling            = 2104
	CodeNotRenewable       = 2105
	CodeNotTransferable    = 2106
	CodeAuthentication     = 2200
	CodeAuthorization      = 2201
	CodeInvalidAuthInfo    = 2202
	CodePendingTransfer    = 2300
	CodeNotPendingTransfer = 2301
	CodeExists             = 2302
	CodeNotExist           = 2303
	CodeStatusProhibits    = 2304
	CodeAssocProhibits     = 2305
	CodePolicy             = 2306
	CodeUnimplService      = 2307
	CodeDataPolicy         = 2308
	CodeFailed             = 2400
	CodeFailedClosing      = 2500
	CodeAuthClosing        = 2501
	CodeSessionLimit       = 2502
)

var messages = map[int]string{
	CodeOK:                 "Command completed successfully",
	CodePending:            "Command completed successfully; action pending",
	CodeNoMessages:         "Command completed successfully; no messages",
	CodeAckToDequeue:       "Command completed successfully; ack to dequeue",
	CodeBye:                "Command completed successfully; ending session",
	CodeUnknownCommand:     "Unknown command",
	CodeSyntax:             "Command syntax error",
	CodeUseError:           "Command use error",
	CodeParamMissing:       "Required parameter missing",
	CodeValueRange:         "Parameter value range error",
	CodeValueSyntax:        "Parameter value syntax error",
	CodeUnimplVersion:      "Unimplemented protocol version",
	CodeUnimplCommand:      "Unimplemented command",
	CodeUnimplOption:       "Unimplemented option",
	CodeUnimplExtension:    "Unimplemented extension",
	CodeBilling:            "Billing failure",
	CodeNotRenewable:       "Object is not eligible for renewal",
	CodeNotTransferable:    "Object is not eligible for transfer",
	CodeAuthentication:     "Authentication error",
	CodeAuthorization:      "Authorization error",
	CodeInvalidAuthInfo:    "Invalid authorization information",
	CodePendingTransfer:    "Object pending transfer",
	CodeNotPendingTransfer: "Object not pending transfer",
	CodeExists:             "Object exists",
	CodeNotExist:           "Object does not exist",
	CodeStatusProhibits:    "Object status prohibits operation",
	CodeAssocProhibits:     "Object association prohibits operation",
	CodePolicy:             "Parameter value policy error",
	CodeUnimplService:      "Unimplemented object service",
	CodeDataPolicy:         "Data management policy violation",
	CodeFailed:             "Command failed",
	CodeFailedClosing:      "Command failed; server closing connection",
	CodeAuthClosing:        "Authentication error; server closing connection",
	CodeSessionLimit:       "Session limit exceeded; server closing connection",
}

// Message is RFC 5730's text for a result code ("" for an unknown code).
func Message(code int) string { return messages[code] }

// Success reports whether code is a success code (1xxx).
func Success(code int) bool { return code >= 1000 && code < 2000 }
