package journal

// OwnerOnlySDDL is the DACL a new journal gets on Windows, for the tests.
var OwnerOnlySDDL = ownerOnlySDDL
