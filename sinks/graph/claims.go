package graph

// Claims: which scopes hold a node or relationship.
//
// Every item the sink writes carries syncscope / lastupdated (the scope
// that last claimed it and that scope's tag). An item several scopes claim
// also carries the full list of its claims: syncscopes (scope names) and
// synctags (each scope's tag of its last claim), and syncshared = true; an
// item one scope claims stores no lists (they read as [syncscope] and
// [lastupdated]). A scope claims a node
// by writing it or a relationship to or from it, and a relationship by
// writing it. A scope's sweep releases its stale claims; an item is deleted
// only when its last claim is released. Tags are compared only within one
// scope (each scope's own tag guards its own claim), never across scopes.
//
// Sweeps find a scope's claims through two indexes: (syncscope,
// lastupdated) for the items the scope claimed last, and syncshared for the
// few items other scopes claimed after it.

// claimProps are the claim properties of a write (map entries) from the
// new lists nsc / ntg: only a shared item stores the lists (an item one
// scope claims keeps just syncscope / lastupdated, as before claims).
const claimProps = `syncscopes: CASE WHEN size(nsc) > 1 THEN nsc END, synctags: CASE WHEN size(nsc) > 1 THEN ntg END,
              syncshared: CASE WHEN size(nsc) > 1 THEN true END`

// claimLists yields v's claim lists as <v>_sc and <v>_tg, treating an item
// written before claims existed as claimed by its syncscope alone, and an
// item without syncscope (not written by the sink) as unclaimed.
func claimLists(v string) string {
	return `CASE WHEN ` + v + `.syncscope IS NULL THEN [] ELSE coalesce(` + v + `.syncscopes, [` + v + `.syncscope]) END AS ` + v + `_sc,
     CASE WHEN ` + v + `.syncscope IS NULL THEN [] ELSE coalesce(` + v + `.synctags, [` + v + `.lastupdated]) END AS ` + v + `_tg`
}

// claimMine yields <v>_keep (indexes of the other scopes' claims) and
// <v>_mine (this scope's claim tag, or null), from <v>_sc and <v>_tg.
func claimMine(v string) string {
	return `[i IN range(0, size(` + v + `_sc) - 1) WHERE ` + v + `_sc[i] <> $scope] AS ` + v + `_keep,
     head([i IN range(0, size(` + v + `_sc) - 1) WHERE ` + v + `_sc[i] = $scope | ` + v + `_tg[i]]) AS ` + v + `_mine`
}

// refClaim makes the scope claim the endpoint v of a relationship at $tag
// without touching its properties (a tag older than the scope's existing
// claim changes nothing; a node not written by the sink is left alone).
// The common case — the node was written or claimed earlier in the same
// sync, so its last claim is already (scope, tag) — costs one comparison.
// SET items read the claim lists before the last item replaces them.
func refClaim(v string) string {
	sc := `coalesce(` + v + `.syncscopes, [` + v + `.syncscope])`
	tg := `coalesce(` + v + `.synctags, [` + v + `.lastupdated])`
	mine := `head([i IN range(0, size(` + sc + `) - 1) WHERE ` + sc + `[i] = $scope | ` + tg + `[i]])`
	return `
FOREACH (_ IN CASE WHEN ` + v + `.syncscope IS NULL OR (` + v + `.syncscope = $scope AND ` + v + `.lastupdated = $tag) THEN []
                   WHEN coalesce(` + mine + `, $tag) > $tag THEN [] ELSE [1] END |
  SET ` + v + `.synctags = CASE WHEN size([x IN ` + sc + ` WHERE x <> $scope]) > 0
        THEN [i IN range(0, size(` + sc + `) - 1) WHERE ` + sc + `[i] <> $scope | ` + tg + `[i]] + $tag END,
      ` + v + `.syncshared = CASE WHEN size([x IN ` + sc + ` WHERE x <> $scope]) > 0 THEN true END,
      ` + v + `.lastupdated = CASE WHEN ` + v + `.syncscope = $scope THEN $tag ELSE ` + v + `.lastupdated END,
      ` + v + `.syncscopes = CASE WHEN size([x IN ` + sc + ` WHERE x <> $scope]) > 0 THEN [x IN ` + sc + ` WHERE x <> $scope] + $scope END)`
}

// ownedMatch matches (pattern binding v) the items whose last claim is the
// scope's, with a claim tag `op` $param; it ends with `WITH v`.
func ownedMatch(pattern, v, op, param string) string {
	return `MATCH ` + pattern + ` WHERE ` + v + `.syncscope = $scope AND ` + v + `.lastupdated ` + op + ` $` + param + `
WITH ` + v + ` `
}

// sharedMatch matches the items the scope claims but another scope claimed
// last, with the scope's claim tag `op` $param; it ends with `WITH v`.
func sharedMatch(pattern, v, op, param string) string {
	return `MATCH ` + pattern + ` WHERE ` + v + `.syncshared = true AND ` + v + `.syncscope <> $scope AND $scope IN ` + v + `.syncscopes
WITH ` + v + `, head([i IN range(0, size(` + v + `.syncscopes) - 1) WHERE ` + v + `.syncscopes[i] = $scope | ` + v + `.synctags[i]]) AS mine
WHERE mine ` + op + ` $` + param + `
WITH ` + v + ` `
}

// releaseClaim releases the scope's claim on v (matched by ownedMatch or
// sharedMatch, at most $limit of them): v is deleted (detach for nodes)
// when no other claim is left, otherwise its last claim passes to one of
// the remaining scopes. Returns n (items handled) and deleted.
func releaseClaim(v, del string) string {
	return `LIMIT $limit
WITH ` + v + `, ` + claimLists(v) + `
WITH ` + v + `, ` + v + `_sc, ` + v + `_tg, [i IN range(0, size(` + v + `_sc) - 1) WHERE ` + v + `_sc[i] <> $scope] AS keep
WITH ` + v + `, ` + v + `_sc, ` + v + `_tg, keep, size(keep) = 0 AS gone, ` + v + `.syncscope = $scope AS owned
FOREACH (_ IN CASE WHEN gone THEN [] ELSE [1] END |
  SET ` + v + `.syncscopes = CASE WHEN size(keep) > 1 THEN [i IN keep | ` + v + `_sc[i]] END,
      ` + v + `.synctags = CASE WHEN size(keep) > 1 THEN [i IN keep | ` + v + `_tg[i]] END,
      ` + v + `.syncshared = CASE WHEN size(keep) > 1 THEN true END,
      ` + v + `.syncscope = CASE WHEN owned THEN ` + v + `_sc[last(keep)] ELSE ` + v + `.syncscope END,
      ` + v + `.lastupdated = CASE WHEN owned THEN ` + v + `_tg[last(keep)] ELSE ` + v + `.lastupdated END)
FOREACH (_ IN CASE WHEN gone THEN [1] ELSE [] END | ` + del + ` ` + v + `)
RETURN count(*) AS n, count(CASE WHEN gone THEN 1 END) AS deleted`
}

// retagClaim sets the scope's claim tags above $limit on v to $retag (the
// scope reset).
func retagClaim(v string) string {
	return `LIMIT $batch
WITH ` + v + `, ` + claimLists(v) + `
WITH ` + v + `, ` + v + `_sc, ` + v + `_tg, ` + v + `.syncscope = $scope AND ` + v + `.lastupdated > $limit AS own
SET ` + v + `.syncscopes = CASE WHEN size(` + v + `_sc) > 1 THEN ` + v + `_sc END,
    ` + v + `.synctags = CASE WHEN size(` + v + `_sc) > 1 THEN [i IN range(0, size(` + v + `_sc) - 1) | CASE WHEN ` + v + `_sc[i] = $scope AND ` + v + `_tg[i] > $limit THEN $retag ELSE ` + v + `_tg[i] END] END,
    ` + v + `.lastupdated = CASE WHEN own THEN $retag ELSE ` + v + `.lastupdated END
RETURN count(*) AS n`
}

// markNew gives an item the MERGE just created Sightline's marker (its
// syncscope), so writeClaim can tell it from an item that existed without
// one: a node or relationship another tool wrote, which is never claimed.
func markNew(v string) string {
	return `ON CREATE SET ` + v + `.syncscope = $scope, ` + v + `.lastupdated = $tag
`
}

// writeClaim filters the rows to the items Sightline wrote (marked by
// markNew or an earlier write: syncscope set) whose claim by the scope is
// not newer than $tag, and yields the new claim lists nsc / ntg (carrying
// the names in with). An item that existed without the marker (another
// tool's) is left out: never claimed, changed, or later swept. An item
// only this scope claims (or a new one) takes the short path: its claim is
// its lastupdated.
func writeClaim(v, with string) string {
	sc := `CASE WHEN ` + v + `.syncscope IS NULL THEN [] ELSE coalesce(` + v + `.syncscopes, [` + v + `.syncscope]) END`
	tg := `CASE WHEN ` + v + `.syncscope IS NULL THEN [] ELSE coalesce(` + v + `.synctags, [` + v + `.lastupdated]) END`
	solo := v + `.syncscope IS NULL OR (` + v + `.syncscope = $scope AND NOT coalesce(` + v + `.syncshared, false))`
	return `
WITH ` + with + `, ` + solo + ` AS ` + v + `_solo
WITH ` + with + `, ` + v + `_solo,
     CASE WHEN ` + v + `_solo THEN [] ELSE ` + sc + ` END AS ` + v + `_sc,
     CASE WHEN ` + v + `_solo THEN [] ELSE ` + tg + ` END AS ` + v + `_tg
WHERE CASE WHEN ` + v + `_solo THEN ` + v + `.syncscope IS NOT NULL AND ` + v + `.lastupdated <= $tag
           ELSE coalesce(head([i IN range(0, size(` + v + `_sc) - 1) WHERE ` + v + `_sc[i] = $scope | ` + v + `_tg[i]]), $tag) <= $tag END
WITH ` + with + `,
     [i IN range(0, size(` + v + `_sc) - 1) WHERE ` + v + `_sc[i] <> $scope | ` + v + `_sc[i]] + $scope AS nsc,
     [i IN range(0, size(` + v + `_sc) - 1) WHERE ` + v + `_sc[i] <> $scope | ` + v + `_tg[i]] + $tag AS ntg`
}
