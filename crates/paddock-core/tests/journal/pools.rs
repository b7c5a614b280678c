//! Warm pools on the fake engine: filled ahead, hidden until claimed,
//! claimed without a container being made, refilled; a create that names
//! its id or asks for other options is made fresh.

use std::sync::Arc;

use paddock_core::config::PoolConfig;
use paddock_core::{BoxEngine, BoxService, CoreConfig, CoreError, CreateBox};
use paddock_store::Store;

use crate::fake_engine::FakeEngine;

fn pooled(store: &Arc<Store>, engine: &Arc<FakeEngine>, size: usize) -> Arc<BoxService> {
    let mut config = CoreConfig::default();
    config.boxes.spare_networks = 0;
    config.pools.push(PoolConfig {
        project: "journal".into(),
        image: Some("busybox:latest".into()),
        size,
    });
    let engine: Arc<dyn BoxEngine> = engine.clone();
    BoxService::new(store.clone(), engine, config, Vec::new()).unwrap()
}

fn ask() -> CreateBox {
    CreateBox {
        project: "journal".into(),
        image: Some("busybox:latest".into()),
        description: Some("claimed".into()),
        ..CreateBox::default()
    }
}

#[tokio::test]
async fn a_warm_box_is_claimed_without_making_one_and_the_pool_refills() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let engine = Arc::new(FakeEngine::default());
    let service = pooled(&store, &engine, 2);

    service.fill_pools().await;
    assert_eq!(engine.counts().0, 2, "two boxes made ahead");
    assert!(
        service.list().unwrap().is_empty(),
        "nobody's boxes are not listed"
    );
    let warm = store.warm_boxes("journal", "busybox:latest").unwrap();
    assert_eq!(warm.len(), 2);
    assert!(matches!(service.get(&warm[0]), Err(CoreError::NotFound(_))));

    let claimed = service.create(ask()).await.unwrap();
    assert_eq!(claimed.view.box_id, warm[0], "the oldest is claimed");
    assert_eq!(claimed.view.description, "claimed");
    assert_eq!(engine.counts().0, 2, "a claim makes no container");
    assert_eq!(service.list().unwrap().len(), 1);
    assert_eq!(service.get(&warm[0]).unwrap().box_id, warm[0]);

    service.fill_pools().await;
    assert_eq!(engine.counts().0, 3, "the pool is full again");
    assert_eq!(
        store.warm_boxes("journal", "busybox:latest").unwrap().len(),
        2
    );

    // A named id, other options, another project: made fresh.
    for req in [
        CreateBox {
            box_id: Some("named".into()),
            ..ask()
        },
        CreateBox {
            read_only: Some(true),
            ..ask()
        },
        CreateBox {
            project: "other".into(),
            ..ask()
        },
    ] {
        service.create(req).await.unwrap();
    }
    assert_eq!(engine.counts().0, 6);
    assert_eq!(
        store.warm_boxes("journal", "busybox:latest").unwrap().len(),
        2
    );

    // A smaller pool gives back what it no longer wants.
    let smaller = pooled(&store, &engine, 1);
    smaller.fill_pools().await;
    assert_eq!(
        store.warm_boxes("journal", "busybox:latest").unwrap().len(),
        1
    );
    assert_eq!(engine.counts().0, 5);
}
