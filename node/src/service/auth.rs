//! Users, roles and logins (auth.proto) over the node's operations.

use tonic::{Request, Response, Status};
use zdb_proto::v1::auth_server::Auth;
use zdb_proto::v1::*;

use super::call::serve;
use crate::ops::Ops;

pub struct AuthService {
    ops: Ops,
}

impl AuthService {
    pub fn new(ops: Ops) -> Self {
        AuthService { ops }
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn authenticate(
        &self,
        request: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let peer = request.remote_addr();
        let user = request.get_ref().user.clone();
        let answer = serve(&self.ops, "Authenticate", request, async |req, _| {
            self.ops.authenticate(req).await
        })
        .await;
        let decision = match &answer {
            Ok(_) => crate::auth::audit::Decision::Allowed,
            Err(status) => crate::auth::audit::Decision::Denied(status.message().to_owned()),
        };
        self.ops
            .guard()
            .audit()
            .record(&user, "Authenticate", peer, decision);
        answer
    }

    async fn auth_status(
        &self,
        request: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        serve(&self.ops, "AuthStatus", request, async |_, ctx| {
            Ok(self.ops.auth_status(&ctx.principal))
        })
        .await
    }

    async fn auth_enable(
        &self,
        request: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        serve(&self.ops, "AuthEnable", request, async |req, _| {
            self.ops.auth_enable(req).await
        })
        .await
    }

    async fn auth_disable(
        &self,
        request: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        serve(&self.ops, "AuthDisable", request, async |_, _| {
            self.ops.auth_disable().await
        })
        .await
    }

    async fn user_add(
        &self,
        request: Request<UserAddRequest>,
    ) -> Result<Response<UserChangeResponse>, Status> {
        serve(&self.ops, "UserAdd", request, async |req, _| {
            self.ops.user_add(req).await
        })
        .await
    }

    async fn user_delete(
        &self,
        request: Request<UserDeleteRequest>,
    ) -> Result<Response<UserChangeResponse>, Status> {
        serve(&self.ops, "UserDelete", request, async |req, _| {
            self.ops.user_delete(req).await
        })
        .await
    }

    async fn user_change_password(
        &self,
        request: Request<UserChangePasswordRequest>,
    ) -> Result<Response<UserChangeResponse>, Status> {
        serve(&self.ops, "UserChangePassword", request, async |req, _| {
            self.ops.user_change_password(req).await
        })
        .await
    }

    async fn user_grant_role(
        &self,
        request: Request<UserRoleRequest>,
    ) -> Result<Response<UserChangeResponse>, Status> {
        serve(&self.ops, "UserGrantRole", request, async |req, _| {
            self.ops.user_grant_role(req).await
        })
        .await
    }

    async fn user_revoke_role(
        &self,
        request: Request<UserRoleRequest>,
    ) -> Result<Response<UserChangeResponse>, Status> {
        serve(&self.ops, "UserRevokeRole", request, async |req, _| {
            self.ops.user_revoke_role(req).await
        })
        .await
    }

    async fn user_list(
        &self,
        request: Request<UserListRequest>,
    ) -> Result<Response<UserListResponse>, Status> {
        serve(&self.ops, "UserList", request, async |_, _| {
            self.ops.user_list().await
        })
        .await
    }

    async fn role_add(
        &self,
        request: Request<RoleAddRequest>,
    ) -> Result<Response<RoleChangeResponse>, Status> {
        serve(&self.ops, "RoleAdd", request, async |req, _| {
            self.ops.role_add(req).await
        })
        .await
    }

    async fn role_delete(
        &self,
        request: Request<RoleDeleteRequest>,
    ) -> Result<Response<RoleChangeResponse>, Status> {
        serve(&self.ops, "RoleDelete", request, async |req, _| {
            self.ops.role_delete(req).await
        })
        .await
    }

    async fn role_grant_permission(
        &self,
        request: Request<RoleGrantPermissionRequest>,
    ) -> Result<Response<RoleChangeResponse>, Status> {
        serve(&self.ops, "RoleGrantPermission", request, async |req, _| {
            self.ops.role_grant_permission(req).await
        })
        .await
    }

    async fn role_revoke_permission(
        &self,
        request: Request<RoleRevokePermissionRequest>,
    ) -> Result<Response<RoleChangeResponse>, Status> {
        serve(
            &self.ops,
            "RoleRevokePermission",
            request,
            async |req, _| self.ops.role_revoke_permission(req).await,
        )
        .await
    }

    async fn role_list(
        &self,
        request: Request<RoleListRequest>,
    ) -> Result<Response<RoleListResponse>, Status> {
        serve(&self.ops, "RoleList", request, async |_, _| {
            self.ops.role_list().await
        })
        .await
    }
}
