"""The approval: who may approve, the record `rea approve` writes once, and its check before
every launch and every resume step (docs/security.md).

approval.json is created once and never rewritten (creating it fails when it exists), is
read-only for everyone, and is owned by the approver's uid: the operating system, not the file,
says who wrote it. It binds the plan's sha256 and the budget. Before anything is submitted, rea
checks that:
- the record parses and names this campaign;
- the file is owned by the uid it records (whoever rewrites it owns the new file) and nobody
  but its owner can write it in place;
- the approver is allowed by [approval] in rea.toml (approvers; approver_not_planner, the
  planner being the owner of plan.json);
- plan.json's sha256 is the approved one: the copy of the hash in campaign.json is not the
  authority, so editing plan.json and campaign.json together does not pass;
- campaign.json's approved budget is the approved one.
"""

from __future__ import annotations

import json
import stat

from rea_cli.campaign.journal import now_iso
from rea_cli.campaign.model import Approval, Campaign
from rea_cli.campaign.store import CampaignStore
from rea_cli.config import ApprovalSettings
from rea_cli.errors import RefusedError, UsageError
from rea_cli.fsutil import create_once
from rea_cli.identity import User, current_user, owner_of, user_of
from rea_cli.planner.plan import plan_hash


class ApprovalBroken(RefusedError):
    """What is on disk is not what was approved (or not by someone allowed to)."""


def check_approver(policy: ApprovalSettings, approver: User, planner: User) -> None:
    """Refuse (ApprovalBroken) an approver the workspace's policy does not allow. Pure."""
    if policy.approvers and approver.name not in policy.approvers:
        raise ApprovalBroken(
            f"{approver.name} may not approve: [approval] approvers in rea.toml lists "
            f"{', '.join(policy.approvers)}; ask one of them to run `rea approve`"
        )
    if policy.approver_not_planner and approver.uid == planner.uid:
        raise ApprovalBroken(
            f"{approver.name} planned this campaign and [approval] approver_not_planner is set "
            "in rea.toml: another user must approve it"
        )


def write_approval(
    store: CampaignStore, c: Campaign, policy: ApprovalSettings, standing: str | None = None
) -> Approval:
    """Check the approver, then create approval.json once (FileExistsError if it exists).

    `standing`: a run of a recurring campaign, approved by its schedule's standing approval
    (whose approver the policy checked when it was given); the record names it."""
    approver, planner = current_user(), owner_of(store.plan_path)
    if standing is None:
        check_approver(policy, approver, planner)
    approval = Approval(
        campaign_id=c.campaign_id,
        by=approver.name,
        uid=approver.uid,
        at=now_iso(),
        plan_hash=plan_hash(store.read_plan_bytes()),
        approved_gpu_hours=c.budget.approved_gpu_hours,
        planner=planner.name,
        approvers=list(policy.approvers),
        approver_not_planner=policy.approver_not_planner,
        standing=standing,
    )
    text = json.dumps(approval.model_dump(mode="json"), sort_keys=True) + "\n"
    create_once(store.approval_path, text.encode("utf-8"))
    return approval


def verify_approval(store: CampaignStore, c: Campaign, policy: ApprovalSettings) -> Approval:
    """The approval record, checked against what is on disk now; ApprovalBroken otherwise."""
    path = store.approval_path
    try:
        approval = store.approval()
    except UsageError as exc:  # a damaged record binds nothing either
        raise ApprovalBroken(str(exc)) from None
    if approval is None:
        raise ApprovalBroken(f"{path} is missing; the campaign must be approved with `rea approve`")
    if approval.campaign_id != c.campaign_id:
        raise ApprovalBroken(f"{path} approves campaign {approval.campaign_id!r}, not this one")
    st = path.stat()
    owner = user_of(st.st_uid)
    recorded = approval.uid if approval.uid is not None else owner.uid
    if owner.uid != recorded or (approval.uid is None and owner.name != approval.by):
        raise ApprovalBroken(
            f"{path} records {approval.by} as approver but was written by {owner.name}: it is "
            "not the approval `rea approve` wrote; restore it, or cancel and re-plan"
        )
    if stat.S_IMODE(st.st_mode) & 0o022:
        raise ApprovalBroken(
            f"{path} can be rewritten by others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"restore it read-only (`chmod a-w {path}`)"
        )
    try:
        digest = plan_hash(store.read_plan_bytes())
    except UsageError as exc:  # plan.json removed
        raise ApprovalBroken(str(exc)) from None
    check_approver(policy, User(approval.by, owner.uid), owner_of(store.plan_path))
    if digest != approval.plan_hash:
        raise ApprovalBroken(
            f"{store.plan_path} was edited after approval ({digest[:19]} != "
            f"{approval.plan_hash[:19]}); restore the approved plan or plan a new campaign "
            "with `rea plan`"
        )
    if c.budget.approved_gpu_hours != approval.approved_gpu_hours:
        raise ApprovalBroken(
            f"{store.campaign_path} says {c.budget.approved_gpu_hours:g} GPU-h but "
            f"{approval.approved_gpu_hours:g} GPU-h were approved; restore it, or cancel and "
            "re-plan with the budget you need"
        )
    return approval
