//! Every parameter of the catalog, with the aliases real SAP releases and toolkits use.

use super::{Param, Ty, aka, opt, req};

pub const USER_ID: Param = aka(req("userId", Ty::String), &["user", "userID", "agentId"]);
pub const CONTAINER_ID: Param = aka(
    req("containerId", Ty::String),
    &["container", "containerID", "lineId"],
);
pub const ITEM_ID: Param = aka(
    req("itemId", Ty::String),
    &["callId", "item", "itemID", "id"],
);
pub const CALL_ID: Param = aka(
    req("callId", Ty::String),
    &["itemId", "call", "callID", "id"],
);
pub const CONSULT_CALL_ID: Param = aka(
    req("consultCallId", Ty::String),
    &["consultItemId", "secondCallId", "otherCallId"],
);
pub const ADDRESS: Param = aka(
    req("address", Ty::String),
    &["destination", "number", "phoneNumber", "to"],
);
/// `transfer`'s address: none completes an ongoing consultation (ICI.md section 4).
pub const TRANSFER_ADDRESS: Param = aka(
    opt("address", Ty::String),
    &["destination", "number", "phoneNumber", "to"],
);
pub const APP_URL: Param = aka(req("appURL", Ty::String), &["appUrl", "url", "URL"]);
pub const APP_ID: Param = aka(
    req("appId", Ty::String),
    &["applicationId", "appID", "applId", "applID"],
);
pub const PRODUCT_NAME: Param = opt("productName", Ty::String);
pub const PRODUCT_VERSION: Param = opt("productVersion", Ty::String);
pub const ICI_VERSION: Param = opt("iciVersion", Ty::String);
pub const CHANNEL: Param = opt("channel", Ty::String);
pub const WORKMODE: Param = aka(
    req("workmode", Ty::Int),
    &["workMode", "workmodeId", "mode"],
);
pub const REASON: Param = aka(opt("reason", Ty::String), &["reasonCode"]);
pub const CHANNELS: Param = aka(req("channels", Ty::StringList), &["channel"]);
pub const QUEUES: Param = aka(req("queues", Ty::StringList), &["queue"]);
pub const ADDRESSES: Param = aka(req("addresses", Ty::StringList), &["address"]);
pub const ATTACHED_DATA: Param = aka(
    req("attachedData", Ty::String),
    &["data", "itemAttachedData"],
);
/// deleteAttachedData's: absent means every application.
pub const OPT_ATTACHED_DATA: Param = aka(
    opt("attachedData", Ty::String),
    &["data", "itemAttachedData"],
);
/// dial's: the line to dial from, when no user is named.
pub const DIAL_CONTAINER_ID: Param = aka(opt("containerId", Ty::String), &["container", "lineId"]);
/// dial's: the agent dialling, when no container is named.
pub const DIAL_USER_ID: Param = aka(opt("userId", Ty::String), &["user"]);
/// dial's: the item (from `create`) the call is placed for.
pub const DIAL_ITEM_ID: Param = aka(opt("itemId", Ty::String), &["item"]);

// Events.
pub const APP_IDS: Param = req("appIds", Ty::StringList);
pub const SEQUENCE: Param = req("sequence", Ty::Int);
pub const PHONE_CALL: Param = req("phoneCall", Ty::Struct("PhoneCall"));
pub const EVENT_ATTACHED_DATA: Param = opt("attachedData", Ty::String);
pub const EVENT_USER_ID: Param = req("userId", Ty::String);
pub const EVENT_WORKMODE: Param = req("workmode", Ty::Int);
pub const EVENT_REASON: Param = opt("reason", Ty::String);
